//! Delivery of one-time codes: an SMS gateway webhook, or the log in dev mode.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

/// The JSON body POSTed to the SMS gateway webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmsMessage {
    pub phone: String,
    pub code: String,
    pub purpose: String,
}

#[derive(Debug, Error)]
pub enum SmsError {
    #[error("SMS gateway request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("SMS gateway answered {0}")]
    Status(u16),
}

/// Where one-time codes go.
#[derive(Clone, Debug)]
pub enum SmsSender {
    /// No gateway: codes are written to the log, for development.
    DevLog,
    /// POST `{phone, code, purpose}` as JSON to `url`.
    Webhook { client: reqwest::Client, url: String },
}

impl SmsSender {
    /// A webhook sender with a request timeout; `None` means dev mode.
    pub fn from_config(url: Option<&str>, timeout: Duration) -> Result<Self, SmsError> {
        match url {
            None => Ok(SmsSender::DevLog),
            Some(url) => {
                let client = reqwest::Client::builder().timeout(timeout).build()?;
                Ok(SmsSender::Webhook {
                    client,
                    url: url.to_owned(),
                })
            }
        }
    }

    pub fn is_dev(&self) -> bool {
        matches!(self, SmsSender::DevLog)
    }

    pub async fn send(&self, message: &SmsMessage) -> Result<(), SmsError> {
        match self {
            SmsSender::DevLog => {
                tracing::info!(
                    target: "lianxin::sms",
                    phone = %message.phone,
                    code = %message.code,
                    purpose = %message.purpose,
                    "dev mode, no SMS gateway configured: one-time code"
                );
                Ok(())
            }
            SmsSender::Webhook { client, url } => {
                let response = client.post(url).json(message).send().await?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(SmsError::Status(response.status().as_u16()))
                }
            }
        }
    }
}
