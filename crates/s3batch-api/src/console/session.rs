//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie, kept on the server (in this process)
//! with the account it acts for, its CSRF token and when it expires. Signing out removes it. The secret a user
//! signs in with is checked and dropped: it is never stored in the session nor sent back.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;

/// The session cookie's name.
pub const COOKIE: &str = "s3batch_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const PRE_COOKIE: &str = "s3batch_signin";
/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 8 * 3600 * 1000;
/// Sessions kept at most (the oldest are dropped beyond it).
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in user (or, on an open server, a browser).
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub account: String,
    /// The access key signed in with (none on an open server).
    pub access_key_id: Option<String>,
    pub csrf: String,
    pub expires_at: i64,
}

/// Every live session of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// 244 random bits, hex (two v4 UUIDs, from the OS's random source).
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Sessions {
    pub fn create(&self, account: &str, access_key_id: Option<&str>, now: i64) -> Session {
        let s = Session {
            id: random_token(),
            account: account.into(),
            access_key_id: access_key_id.map(str::to_string),
            csrf: random_token(),
            expires_at: now + IDLE_MS,
        };
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires_at > now);
            while map.len() >= MAX_SESSIONS {
                let oldest = map.values().min_by_key(|s| s.expires_at).map(|s| s.id.clone()).expect("not empty");
                map.remove(&oldest);
            }
        }
        map.insert(s.id.clone(), s.clone());
        s
    }

    /// The live session with this id, its expiry pushed back.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        let mut map = self.map.lock().expect("sessions lock");
        let s = map.get_mut(id)?;
        if s.expires_at <= now {
            map.remove(id);
            return None;
        }
        s.expires_at = now + IDLE_MS;
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a console cookie (`max_age` 0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_removed() {
        let s = Sessions::default();
        let a = s.create("111111111111", Some("AKIA"), 0);
        assert_ne!(a.id, a.csrf);
        assert_eq!(a.id.len(), 64);
        assert_eq!(s.get(&a.id, 1000).unwrap().account, "111111111111");
        assert!(s.get(&a.id, 1000 + IDLE_MS).is_none(), "idle too long");
        let b = s.create("111111111111", None, 0);
        s.remove(&b.id);
        assert!(s.get(&b.id, 1).is_none());
        assert!(s.get("nope", 1).is_none());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; s3batch_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
