//! The `short` formatter as a WASI command: see the library for what it does.

tidings_guest::main!(message_formatter = short::format);
