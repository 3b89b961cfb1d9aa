//! The `format` export of a formatter built for `wasm32-wasip2`, where it is a component: the
//! world `tidings:formatter/warm` (`guest-sdk/javascript/wit/formatter.wit`). [`main!`]
//! exports it beside `wasi:cli/run`; tidings calls it on a kept instance, once per request.
//!
//! [`main!`]: crate::main

wit_bindgen::generate!({
    inline: "
        package tidings:formatter;

        world format {
            export format: func(request: string) -> result<string, string>;
        }
    ",
    world: "format",
    default_bindings_module: "tidings_guest::component",
    pub_export_macro: true,
    export_macro_name: "export_format",
});

/// One warm call, answered with `dispatch` as `main` answers a fresh one: `Ok` is what `main`
/// would print on stdout, `Err` what it would say on stderr before exiting with status 1.
pub fn answer(
    request: String,
    dispatch: impl FnOnce(crate::Hook, &[u8]) -> Result<Vec<u8>, crate::Error>,
) -> Result<String, String> {
    let out = crate::parse_head(request.into_bytes())
        .and_then(|(hook, input)| dispatch(hook, &input))
        .map_err(|e| format!("tidings-guest: {}\n", e.0))?;
    // The hooks' results are serde_json's output: UTF-8.
    String::from_utf8(out).map_err(|e| format!("tidings-guest: the result is not UTF-8: {e}\n"))
}
