//! Test doubles (the `testing` feature).
