"""essqpv — observatoire ouvert de l'économie sociale et solidaire dans les quartiers
prioritaires de la politique de la ville (QPV).

The library never prints: each pipeline stage returns data or raises an
:class:`essqpv.errors.EssqpvError`. The CLI (:mod:`essqpv.cli`) and the web application
(:mod:`essqpv.web`) are thin shells over the same functions.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
