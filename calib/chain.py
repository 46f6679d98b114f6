"""Old home of the validation chain's recipe: now :mod:`calib.recipes` (this module goes)."""

from calib.recipes import PCM_LEVELS, characterize, fit_characterized

__all__ = ["PCM_LEVELS", "characterize", "fit_characterized"]
