//! A plain `http://host:port/path` URL: where the `http` app posts events (`worker.http.url`),
//! checked when the configuration loads.

/// `http://host:port/path`, checked when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port`, for the Host header and to resolve.
    pub authority: String,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if authority.is_empty() || port.is_none() {
            return Err(format!(
                "{url:?} needs a host and a port, like http://127.0.0.1:9000/events"
            ));
        }
        Ok(HttpUrl {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_host_and_a_port() {
        let url = HttpUrl::parse("http://127.0.0.1:9000/events").unwrap();
        assert_eq!(url.authority, "127.0.0.1:9000");
        assert_eq!(url.path, "/events");
        assert_eq!(HttpUrl::parse("http://backend:80").unwrap().path, "/");
        assert!(HttpUrl::parse("https://x:1/").is_err());
        assert!(HttpUrl::parse("http://nohost/").is_err());
        assert!(HttpUrl::parse("").is_err());
    }
}
