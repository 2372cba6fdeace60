"""The model zoo and the bring-your-own-model builder."""

from torchship.models.build import build_model, import_model_class
from torchship.models.composite import Ensemble, composites
from torchship.models.init import INIT_SCHEMES, apply_init
from torchship.models.zoo import zoo

__all__ = ["INIT_SCHEMES", "Ensemble", "apply_init", "build_model", "composites", "import_model_class", "zoo"]
