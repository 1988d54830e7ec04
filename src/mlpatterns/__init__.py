"""mlpatterns: the 30 patterns of *Machine Learning Design Patterns* as one toolkit.

Importing the package stays light; each chapter lives in its own subpackage
(:mod:`mlpatterns.data`, :mod:`mlpatterns.reproducibility`, ...) and heavy
libraries (torch, onnxruntime) are imported only where they are used.
"""

__version__ = "0.1.0"
