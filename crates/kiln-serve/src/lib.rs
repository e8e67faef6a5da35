//! kiln-serve: the HTTP API. Planned (issue #7): OpenAI-compatible completions and chat,
//! llama.cpp-compatible `/infill`, metrics and auth, over kiln-infer. Nothing is implemented yet.
#![deny(missing_docs)]
