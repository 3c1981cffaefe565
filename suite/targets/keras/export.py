"""Keras 3 exporters: none yet.

The Keras targets have no export route (no ``keras>onnx`` / ``keras>tflite`` target is registered); this
module exists so that every framework folder has the same file names. An exporter added here would use
the public builder :func:`suite.targets.keras.model.graph`.
"""
