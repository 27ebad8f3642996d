"""Built-in lines: the train, predict and monitor pipelines assembled from the stages."""
