//! The one place that turns failures into what the user reads and the exit code scripts see.
//!
//! Commands return `anyhow::Error`. Anywhere in its chain, an error that gives [`Advice`] (a
//! [`Hint`], or a module's own error: spec, plan, render, engine) adds the `hint:` line and
//! chooses the exit code; everything else prints as `error:` plus `caused by:` lines. [`render`]
//! is the one function that turns the chain into text.

use std::fmt;

use crate::spec::SpecError;

/// Exit codes are part of berth's interface (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Something failed.
    Failure = 1,
    /// The project file or the command line is wrong; nothing was changed.
    BadInput = 2,
    /// The container engine cannot be reached.
    NoEngine = 3,
    /// berth refused to act (would lose work, or the container is not berth's); nothing changed.
    Refused = 4,
    /// Interrupted (Ctrl-C) before it finished; what it was making was removed.
    Interrupted = 130,
}

/// An error a user can act on: what happened, and how to fix it.
#[derive(Debug)]
pub struct Hint {
    pub message: String,
    pub hint: Option<String>,
    pub code: Code,
}

impl Hint {
    pub fn new(code: Code, message: impl Into<String>) -> Hint {
        Hint { message: message.into(), hint: None, code }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Hint {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hint {}

/// What a module's error tells the user beyond its message: the exit code and, when there is
/// one, the fix. Every module error type that can reach the user implements it; [`render`]
/// finds it anywhere in the chain.
pub trait Advice: std::error::Error {
    fn code(&self) -> Code;
    fn hint(&self) -> Option<String>;
}

impl Advice for Hint {
    fn code(&self) -> Code {
        self.code
    }

    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

impl Advice for SpecError {
    fn code(&self) -> Code {
        Code::BadInput
    }

    fn hint(&self) -> Option<String> {
        SpecError::hint(self).map(str::to_string)
    }
}

impl Advice for crate::plan::PlanError {
    fn code(&self) -> Code {
        Code::BadInput
    }

    fn hint(&self) -> Option<String> {
        Some(crate::plan::PlanError::hint(self).to_string())
    }
}

impl Advice for crate::render::RenderError {
    fn code(&self) -> Code {
        Code::BadInput
    }

    fn hint(&self) -> Option<String> {
        Some(self.hint.clone())
    }
}

/// The [`Advice`] of one link of an error chain, if its type gives any.
fn advice<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Advice> {
    if let Some(h) = cause.downcast_ref::<Hint>() {
        return Some(h);
    }
    if let Some(s) = cause.downcast_ref::<SpecError>() {
        return Some(s);
    }
    if let Some(e) = cause.downcast_ref::<crate::engine::EngineError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<crate::plan::PlanError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<crate::render::RenderError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<crate::remote::sync::SyncError>() {
        return Some(e);
    }
    None
}

/// The first hint anywhere in an error's chain.
pub fn hint_of(err: &anyhow::Error) -> Option<String> {
    err.chain().filter_map(advice).find_map(|a| a.hint())
}

/// Whether the error itself (not a cause) already tells the user what to do: berth explained
/// it, so retrying differently would not help.
pub fn is_explained(err: &anyhow::Error) -> bool {
    // anyhow's downcast sees through one `.context()`: an explained error with a note on top is
    // still explained.
    err.downcast_ref::<Hint>().is_some()
        || err.downcast_ref::<crate::engine::EngineError>().is_some_and(|e| e.hint().is_some())
}

/// Shorthand: a failure with a hint, as an `anyhow::Error`.
pub fn fail(code: Code, message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hint::new(code, message).with_hint(hint).into()
}

/// The text printed for an error, and the exit code. Each part goes through
/// [`output::escape_lines`](crate::output::escape_lines) (escaped, every line after a part's first
/// indented): a path or name in a message can neither send escape sequences nor start a line that
/// passes for berth's own `error:` or `hint:`.
pub fn render(err: &anyhow::Error) -> (String, i32) {
    let part = |text: &str| crate::output::escape_lines(text);
    let mut out = format!("error: {}\n", part(&err.to_string()));
    let mut code = Code::Failure;
    let mut hint = None;
    for (i, cause) in err.chain().enumerate() {
        if let Some(a) = advice(cause) {
            code = a.code();
            hint = hint.or_else(|| a.hint());
        }
        if i > 0 {
            out.push_str(&format!("  caused by: {}\n", part(&cause.to_string())));
        }
    }
    if let Some(h) = hint {
        out.push_str(&format!("hint: {}\n", part(&h)));
    }
    (out, code as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn hint_anywhere_in_the_chain_sets_hint_and_code() {
        let base: anyhow::Error = fail(Code::NoEngine, "socket refused", "start dockerd");
        let err = Err::<(), _>(base).context("cannot reach the engine").expect_err("an error");
        let (text, code) = render(&err);
        assert_eq!(code, 3);
        assert_eq!(
            text,
            "error: cannot reach the engine\n  caused by: socket refused\nhint: start dockerd\n"
        );
    }

    #[test]
    fn a_path_with_control_characters_cannot_forge_error_lines() {
        let err = fail(Code::BadInput, "no project in /tmp/x\nhint: run rm -rf ~\x1b[8m", "fix /tmp/\x07x");
        let (text, _) = render(&err);
        assert_eq!(
            text,
            "error: no project in /tmp/x\n  hint: run rm -rf ~\\x1b[8m\nhint: fix /tmp/\\x07x\n"
        );
        // berth's own continuation lines keep their place.
        let (text, _) = render(&anyhow::anyhow!("building failed: exit 1\n    step 2\x1b[0m"));
        assert_eq!(text, "error: building failed: exit 1\n    step 2\\x1b[0m\n");
    }

    #[test]
    fn module_errors_give_their_code_and_hint_through_one_trait() {
        let engine = crate::engine::EngineError::NotRunning {
            endpoint: crate::engine::Endpoint::Unix("/run/docker.sock".into()),
        };
        let err = Err::<(), _>(anyhow::Error::new(engine)).context("starting demo").expect_err("an error");
        let (text, code) = render(&err);
        assert_eq!(code, 3);
        assert_eq!(
            text,
            "error: starting demo\n  caused by: the container engine at unix:///run/docker.sock is not \
             running (connection refused)\nhint: start it (`sudo systemctl start docker`), or check DOCKER_HOST\n"
        );
        let render_err = crate::render::RenderError { message: "bad nodes".into(), hint: "use 1".into() };
        let (text, code) = render(&anyhow::Error::new(render_err));
        assert_eq!((text.as_str(), code), ("error: bad nodes\nhint: use 1\n", 2));
    }

    #[test]
    fn explained_errors_stay_explained_under_context() {
        let explained = fail(Code::Failure, "gone", "load it").context("loading");
        assert!(is_explained(&explained));
        assert!(!is_explained(&anyhow::anyhow!("broken pipe").context("loading")));
    }

    #[test]
    fn plain_errors_exit_one_without_hint() {
        let (text, code) = render(&anyhow::anyhow!("boom"));
        assert_eq!((text.as_str(), code), ("error: boom\n", 1));
    }
}
