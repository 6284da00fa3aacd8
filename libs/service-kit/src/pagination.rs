//! Pagination: every list method takes `page_size` (capped at
//! [`MAX_PAGE_SIZE`]) and an opaque `page_token`, and answers with
//! `next_page_token`.
//!
//! Tokens are keyset cursors: the sort key of the last row returned,
//! hex-encoded so clients treat them as opaque. Keyset paging stays correct
//! while rows are inserted, unlike offsets.

use crate::error::{ApiError, Validation};

/// Page size when the request gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A parsed page request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return.
    pub size: u32,
    /// The sort key after which the page starts; `None` for the first page.
    pub after: Option<String>,
}

impl PageRequest {
    /// Parses `page_size` and `page_token` from a request.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, ApiError> {
        let mut validation = Validation::new();
        let page = validation.page(page_size, page_token);
        validation.finish()?;
        page.ok_or_else(|| ApiError::Internal("a valid page request went missing".into()))
    }

    /// Rows to fetch: one more than the page, to learn whether another
    /// page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Trims the extra row and returns the page with its next token, made
    /// from the last row's sort key.
    pub fn finish<T>(&self, mut rows: Vec<T>, sort_key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            let token = rows
                .last()
                .map(|row| encode(&sort_key(row)))
                .unwrap_or_default();
            (rows, token)
        } else {
            (rows, String::new())
        }
    }
}

impl Validation {
    /// The page a request asks for; `None`, with its problems recorded as
    /// field violations, when `page_size` or `page_token` is bad. For list
    /// methods that validate other fields too, so that one answer names
    /// every bad field.
    pub fn page(&mut self, page_size: i32, page_token: &str) -> Option<PageRequest> {
        let size = match page_size {
            0 => Some(DEFAULT_PAGE_SIZE),
            n if n < 0 => {
                self.check(false, "page_size", "must not be negative");
                None
            }
            n => Some(n.unsigned_abs().min(MAX_PAGE_SIZE)),
        };
        let after = if page_token.is_empty() {
            Some(None)
        } else {
            let decoded = decode(page_token);
            self.check(
                decoded.is_some(),
                "page_token",
                "is not a token this server issued",
            );
            decoded.map(Some)
        };
        Some(PageRequest {
            size: size?,
            after: after?,
        })
    }
}

fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || token.len() > 512 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_defaulted_and_capped() {
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
        assert!(PageRequest::parse(-1, "").is_err());
        assert!(PageRequest::parse(10, "zz").is_err());
    }

    #[test]
    fn tokens_round_trip_through_pages() {
        let page = PageRequest::parse(2, "").unwrap();
        let (rows, token) = page.finish(vec!["a", "b", "c"], |r| r.to_string());
        assert_eq!(rows, ["a", "b"]);
        let next = PageRequest::parse(2, &token).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        let (last, token) = next.finish(vec!["c"], |r| r.to_string());
        assert_eq!((last, token), (vec!["c"], String::new()));
    }
}
