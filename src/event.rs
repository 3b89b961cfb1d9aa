//! Buildbot's build dict and result codes.
//!
//! The types are defined once, in the guest SDK (`tidings_guest::build`), and re-exported here:
//! what the host parses from HttpStatusPush is, by construction, what a Rust formatter
//! deserialises. Unknown fields are kept in each struct's `extra` map and passed through to
//! formatters untouched.

pub use tidings_guest::build::{
    Build, BuildRequest, Builder, Buildset, Change, Log, LogContent, Patch, Properties, Property,
    Results, SourceStamp, Step,
};
