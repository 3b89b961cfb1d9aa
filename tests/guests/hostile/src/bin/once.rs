//! A Rust program that answers a call with "send nothing" and is done: built for wasm32-wasip2
//! without the SDK, it has no `format` export, and its `run` traps when called a second time,
//! so it cannot run warm.
fn main() {
    println!("null");
}
