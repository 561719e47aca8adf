"""Networks: architectures, training runs, model files and ensembles."""
