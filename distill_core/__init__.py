"""distill-lab core: datasets, models, distillers and selectors, evaluation, run folders. No UI code here."""
__version__ = "0.1.0"
