"""An OpenAI- and Ollama-compatible text-generation server with continuous batching on onnxruntime.

It serves an ONNX model package made by `python -m qwen3ops.onnx_export` (the onnxruntime-genai model
builder's CPU export): `python -m qwen3ops.ortserver --model <dir>`. See docs/onnxruntime-server.md.
"""
