//! In-memory ports (in progress)
