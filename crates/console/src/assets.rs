//! The console's files, embedded in the binary, and the headers every console response
//! carries.

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page shell: every screen is drawn into it by the script.
pub const INDEX: Asset =
    Asset { content_type: "text/html; charset=utf-8", body: include_str!("../assets/index.html") };

const FILES: [(&str, Asset); 2] = [
    (
        "console.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../assets/console.js"),
        },
    ),
    (
        "console.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            body: include_str!("../assets/console.css"),
        },
    ),
];

/// The file under `/console/assets/{name}`, if there is one.
pub fn asset(name: &str) -> Option<Asset> {
    FILES.iter().find(|(file, _)| *file == name).map(|(_, asset)| *asset)
}

/// The Content-Security-Policy of every console response: scripts, styles and calls only
/// from this origin (no inline script, so injected markup cannot run), no framing
/// (clickjacking), forms post nowhere else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Headers on every console response, besides the policy above.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    // For browsers that predate `frame-ancestors`.
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    // Operators' data never sits in a shared or disk cache.
    ("cache-control", "no-store"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_loads_only_its_own_files_and_no_inline_script() {
        assert!(INDEX.body.contains("/console/assets/console.js"));
        assert!(INDEX.body.contains("/console/assets/console.css"));
        assert!(!INDEX.body.contains("<script>"), "inline script would need 'unsafe-inline'");
        assert!(!INDEX.body.contains("style=\""), "inline style would need 'unsafe-inline'");
        assert!(asset("console.js").is_some() && asset("../Cargo.toml").is_none());
    }

    #[test]
    fn the_script_never_writes_markup_from_data() {
        // Every value reaches the page through `textContent` or attributes set one by one:
        // nothing the API returns is parsed as HTML.
        let script = asset("console.js").map(|a| a.body).unwrap_or_default();
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!script.contains(sink), "console.js uses {sink}");
        }
    }
}
