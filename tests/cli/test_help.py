"""Every --help shows its texts as written (markup must not eat them), with typer 0.20 and later."""

import re

import typer


def _commands():
    """(argv, click command) for every command, with a placeholder for each group argument."""
    from torchship.cli.main import _register, app

    _register()

    def walk(command, argv):
        yield argv, command
        for name, sub in getattr(command, "commands", {}).items():
            placeholders = ["X"] * sum(p.param_type_name == "argument" for p in command.params)
            yield from walk(sub, [*argv, *placeholders, name])

    return list(walk(typer.main.get_command(app), []))


def _flat(text: str) -> str:
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


def _argument_help_supported() -> bool:
    # typer <= 0.20 drops an argument's help under click >= 8.5 (click's new Argument(help=) overwrites it)
    app = typer.Typer()

    @app.command()
    def one(x: str = typer.Argument(help="probe")) -> None: ...

    return typer.main.get_command(app).params[0].help == "probe"


def test_help_texts_render_as_written(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per row, so a text can be found whole
    args_ok = _argument_help_supported()
    for argv, command in _commands():
        code, out, err = run_cli(*argv, "--help")
        assert code == 0, (argv, err)
        shown = _flat(out).replace(" ", "")
        for param in command.params:
            if not getattr(param, "help", None) or (param.param_type_name == "argument" and not args_ok):
                continue
            written = param.help.replace("\\<", "<").replace("\\>", ">")  # markdown escapes
            assert _flat(written).replace(" ", "") in shown, (argv, param.name, written)
