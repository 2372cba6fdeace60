from torchship.cli.main import main

main()
