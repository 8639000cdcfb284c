//! ofp <-> model conversion.
