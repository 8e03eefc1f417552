//! `[idle]`: `stop-after = "4h"` stops the environment (never removes it) after that long
//! without an interactive session, a running job or GPU use; `"never"` opts out.
//!
//! Invariants: the value is a string; a duration is at least [`MIN_STOP_AFTER`] (a shorter one
//! would stop an environment between two keystrokes of a user reading a log).

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use super::loose::Loose;
use crate::spec::duration::{format_duration, parse_duration};
use crate::spec::{IdleSpec, SpecError, StopAfter};

/// The shortest `stop-after` accepted.
pub const MIN_STOP_AFTER: u64 = 10 * 60;

const HINT: &str =
    "write `stop-after = \"4h\"` (at least \"10m\"), or `stop-after = \"never\"` to keep it running";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawIdle {
    stop_after: Option<Spanned<Loose>>,
}

pub(super) fn idle(raw: &RawIdle, cx: &Ctx) -> Result<IdleSpec, SpecError> {
    const KEY: &str = "idle.stop-after";
    let Some(value) = &raw.stop_after else { return Ok(IdleSpec::default()) };
    let Loose::Str(text) = value.get_ref() else {
        let msg = format!("expected a string, found {}", value.get_ref().kind());
        return Err(cx.err(value.span(), KEY, msg).with_hint(HINT));
    };
    if text == "never" {
        return Ok(IdleSpec { stop_after: Some(StopAfter::Never) });
    }
    let secs = parse_duration(text).map_err(|m| cx.err(value.span(), KEY, m).with_hint(HINT))?;
    if secs < MIN_STOP_AFTER {
        let msg = format!("`{text}` is shorter than {}", format_duration(MIN_STOP_AFTER));
        return Err(cx.err(value.span(), KEY, msg).with_hint(HINT));
    }
    Ok(IdleSpec { stop_after: Some(StopAfter::Seconds(secs)) })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, parse_in};
    use crate::spec::StopAfter;

    #[test]
    fn stop_after_reads_a_duration_or_never() {
        assert_eq!(
            parse_in("[idle]\nstop-after = \"4h\"").1.idle.stop_after,
            Some(StopAfter::Seconds(14_400))
        );
        assert_eq!(parse_in("[idle]\nstop-after = \"never\"").1.idle.stop_after, Some(StopAfter::Never));
        assert_eq!(parse_in("").1.idle.stop_after, None);
    }

    #[test]
    fn mistakes_point_at_the_value() {
        let cases = [
            ("[idle]\nstop-after = 4", (2, 14), "expected a string"),
            ("[idle]\nstop-after = \"4\"", (2, 14), "no unit"),
            ("[idle]\nstop-after = \"5m\"", (2, 14), "shorter than 10m"),
            ("[idle]\nstop-after = \"forever\"", (2, 14), "not a duration"),
        ];
        for (text, at, want) in cases {
            let e = err(text);
            assert_eq!((e.line, e.column), at, "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.key.as_deref(), Some("idle.stop-after"), "{e:?}");
        }
        let e = err("[idle]\nstop-afer = \"4h\"");
        assert_eq!(e.line, 2, "{e}");
    }
}
