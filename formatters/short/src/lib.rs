//! `short`: the phone-sized message. Body `STATUS: <Result>`, type plain, e.g.
//! `STATUS: Failure`. A port of the one-line Python formatter Buildbot users write:
//! `"STATUS: " + Results[build["results"]].title()`.
//!
//! It reads only `results_text` from the request, so it skips the rest of the build dict
//! without building it: a formatter pays for the fields it names.

use tidings_guest::serde::Deserialize;
use tidings_guest::{Message, text::title_case};

/// The part of the `messageFormatter` arguments this formatter needs.
#[derive(Deserialize)]
#[serde(crate = "tidings_guest::serde")]
pub struct Args {
    pub results_text: String,
}

/// The `messageFormatter` hook.
pub fn format(args: Args) -> Result<Option<Message>, String> {
    Ok(Some(Message::plain(format!(
        "STATUS: {}",
        title_case(&args.results_text)
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(results_text: &str) -> String {
        let msg = format(Args {
            results_text: results_text.into(),
        })
        .unwrap()
        .unwrap();
        msg.body.as_str().unwrap().to_owned()
    }

    #[test]
    fn titles_the_result_name() {
        assert_eq!(body("failure"), "STATUS: Failure");
        assert_eq!(body("success"), "STATUS: Success");
        assert_eq!(body("not finished"), "STATUS: Not Finished");
    }
}
