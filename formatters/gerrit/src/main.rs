//! The `gerrit` formatter as a WASI command: see the library for what it does.

tidings_guest::main!(
    review_cb = gerrit::review,
    start_cb = gerrit::start,
    summary_cb = gerrit::summary,
);
