//! Translation (placeholder).
