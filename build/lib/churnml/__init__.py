"""churnml: churn and expansion prediction for B2B SaaS Customer Success."""

__version__ = "0.1.0"
