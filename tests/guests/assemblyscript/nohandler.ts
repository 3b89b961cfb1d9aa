// Re-exports the warm entry points (so it is built as a reactor) but never hands its code to
// messageFormatter: tests/guests.rs checks that each call fails saying so, fresh and warm.
export { tidings_alloc_v1, tidings_format_v1 } from "./tidings";
