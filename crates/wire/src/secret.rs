//! [`Secret`]: a value that never shows in logs.

use std::fmt;

/// Wraps passwords and AUTH payloads. `Debug` and `Display` print
/// `[REDACTED]`; the value is reachable only through [`Secret::expose`], so
/// every place that reads it is easy to find.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Secret<T> {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Login {
        user: String,
        password: Secret<String>,
    }

    #[test]
    fn secret_never_formats_its_value() {
        let l = Login {
            user: "alice".into(),
            password: Secret::new("hunter2".into()),
        };
        let debug = format!("{l:?} {l:#?} {}", l.password);
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
        assert_eq!(l.password.expose(), "hunter2");
    }
}
