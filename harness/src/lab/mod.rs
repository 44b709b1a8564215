//! sim lab
