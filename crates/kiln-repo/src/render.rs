//! SKELETON (issue #3): being written.
