//! JSON stored deflated, for the table's large items (waiting chunks, outcome records):
//! DynamoDB bills writes and reads by the KB, and these items are repetitive text that
//! deflates to between a third and a fifth of its size.

use super::codec::corrupt;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Read, Write};
use tasks_core::ports::StoreError;

/// `value` as deflated JSON, at the fastest level: a chunk's worth takes well under a
/// millisecond, and the higher levels save little more on text this repetitive.
pub(crate) fn pack(value: &impl Serialize) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_vec(value).map_err(StoreError::permanent)?;
    let mut deflated = DeflateEncoder::new(Vec::with_capacity(json.len() / 3), Compression::fast());
    deflated.write_all(&json).map_err(StoreError::permanent)?;
    let bytes = deflated.finish().map_err(StoreError::permanent)?;
    Ok(AttributeValue::B(Blob::new(bytes)))
}

/// The value [`pack`] stored; `what` names it in the error if it does not decode.
pub(crate) fn unpack<T: DeserializeOwned>(
    packed: &AttributeValue,
    what: &'static str,
) -> Result<T, StoreError> {
    let bytes = packed.as_b().map_err(|_| corrupt(what))?;
    let mut json = Vec::new();
    DeflateDecoder::new(bytes.as_ref())
        .read_to_end(&mut json)
        .map_err(|_| corrupt(what))?;
    serde_json::from_slice(&json).map_err(|_| corrupt(what))
}
