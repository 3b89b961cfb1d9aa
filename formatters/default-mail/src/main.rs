//! The `default-mail` formatter as a WASI command: see the library for what it does.

tidings_guest::main!(
    message_formatter = default_mail::format,
    message_formatter_missing_worker = default_mail::missing_worker,
);
