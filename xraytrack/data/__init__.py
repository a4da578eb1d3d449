"""Reading CXR folders: indexing, decoding, de-duplication, splitting and caching."""
