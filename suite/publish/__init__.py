"""`bench publish`: a run of the results store, logged to an experiment tracker.

One module per tracker, the same small surface in each (STYLE.md lessons 1 and 12):

    suite.publish.common        what they share: finding runs, the cells of a run, stable metric keys
    suite.publish.mlflow        one results run -> one MLflow run (params, metrics, tags, artifacts)
    suite.publish.tensorboard   every run -> scalar history (one step per run) and a text summary per run
    suite.publish.cli           the arguments of `bench publish ...` and `bench run --mlflow`

Neither tracker is imported here or by `bench --help`: each module imports its tracker inside its
functions, and a missing one is a :class:`suite.publish.common.PublishError` naming the pip extra.
"""
