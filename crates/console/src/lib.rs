//! The operators' web console (运营控制台), served by `qianbao serve` at `/console`.
//!
//! Two halves, neither doing I/O:
//! - [`assets`]: the pages. One HTML shell, one stylesheet and one script, written by hand
//!   and embedded with `include_str!`, so the console needs nothing beyond cargo to build
//!   and ships inside the one binary. The script is a client of the public `/v1` API like
//!   any other: every screen is a call an operator could make with `curl` or `qianbao ops`.
//! - [`session`]: signing in. An operator presents an API key once; the console answers with
//!   a sealed, `HttpOnly`, `SameSite=Strict` cookie naming the key (never the key itself),
//!   and a CSRF token the script sends as a header on every call. The server accepts the
//!   cookie only together with that header, so another site can neither read nor act
//!   through an operator's browser.

pub mod assets;
pub mod session;
