//! channel (placeholder)
