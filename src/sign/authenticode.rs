//! Authenticode signatures on PE images (UKIs), as UEFI Secure Boot checks them.
//!
//! Firmware with Secure Boot enforcing runs an EFI binary only if it carries a PKCS#7
//! `SignedData` over the image's Authenticode digest, signed by a key in its `db`. This
//! module computes that digest, builds the `SignedData` (RSA-2048 PKCS#1 v1.5 with SHA-256,
//! the one combination every firmware accepts) and appends it as a `WIN_CERTIFICATE`.
//!
//! The signature is deterministic, so a signed UKI is as reproducible as an unsigned one:
//! PKCS#1 v1.5 has no random padding, and the signed attributes carry no signing time.
//! The structures follow the Authenticode specification ("Windows Authenticode Portable
//! Executable Signature Format") and what `sbsign` writes, and `sbverify` checks them in
//! the tests. RSA is aws-lc-rs's (already built for TLS; constant-time, unlike the pure
//! Rust `rsa` crate).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// SPC_INDIRECT_DATA_OBJID: the content type of an Authenticode signature.
const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// SPC_PE_IMAGE_DATAOBJ.
const SPC_PE_IMAGE_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// SPC_SP_OPUS_INFO_OBJID (empty: no program name or URL).
const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");

/// `SpcPeImageData` as every signer writes it: no flags, and the "file" link the
/// specification declares obsolete, as the BMPString `<<<Obsolete>>>`.
const SPC_PE_IMAGE_DATA_VALUE: [u8; 39] = [
    0x30, 0x25, // SEQUENCE
    0x03, 0x01, 0x00, // flags: empty BIT STRING
    0xA0, 0x20, // [0] EXPLICIT SpcLink
    0xA2, 0x1E, // file [2] EXPLICIT SpcString
    0x80, 0x1C, // unicode [0] IMPLICIT BMPString, 14 UTF-16BE characters
    0, b'<', 0, b'<', 0, b'<', 0, b'O', 0, b'b', 0, b's', 0, b'o', 0, b'l', 0, b'e', 0, b't', 0,
    b'e', 0, b'>', 0, b'>', 0, b'>',
];

/// Offsets in the optional header (PE32+) and the data directory.
const OPT_CHECKSUM: usize = 64;
const OPT_DATA_DIRECTORIES: usize = 112;
const SECURITY_DIRECTORY: usize = 4;

/// Why an image could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticodeError {
    #[error("not a 64-bit PE image: {0}")]
    Parse(#[from] object::read::Error),
    #[error("the image is already signed")]
    AlreadySigned,
    #[error("the image has data after its last section; only cairn's own UKIs are signed")]
    TrailingData,
    #[error("the Secure Boot certificate: {0}")]
    Certificate(#[source] der::Error),
    #[error("the Secure Boot key is not an RSA PKCS#8 key: {0}")]
    Key(String),
    #[error("encoding the signature: {0}")]
    Encode(#[from] der::Error),
    #[error("RSA signing failed")]
    Sign,
    #[error("the signed image does not fit the PE format's 32-bit sizes")]
    TooLarge,
}

/// An RSA signing key and its X.509 certificate (the one enrolled in the firmware's db).
pub struct SecureBootKey {
    key: aws_lc_rs::rsa::KeyPair,
    cert: Certificate,
}

impl SecureBootKey {
    /// From a PKCS#8 DER private key and a DER certificate.
    pub fn from_der(pkcs8: &[u8], cert_der: &[u8]) -> Result<SecureBootKey, AuthenticodeError> {
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| AuthenticodeError::Key(e.to_string()))?;
        let cert = Certificate::from_der(cert_der).map_err(AuthenticodeError::Certificate)?;
        Ok(SecureBootKey { key, cert })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AuthenticodeError> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .map_err(|_| AuthenticodeError::Sign)?;
        Ok(sig)
    }
}

/// Where the fields Authenticode skips are.
struct Skips {
    checksum: usize,
    security_entry: usize,
    size_of_headers: usize,
    /// `(file offset, size)` of each section's raw data, in file order.
    sections: Vec<(usize, usize)>,
}

fn skips(image: &[u8]) -> Result<Skips, AuthenticodeError> {
    let file = PeFile64::parse(image)?;
    let opt = file.nt_headers().optional_header();
    let optional = file.dos_header().nt_headers_offset() as usize + 24;
    let mut sections: Vec<(usize, usize)> = file
        .section_table()
        .iter()
        .map(|s| {
            let le = object::LittleEndian;
            (s.pointer_to_raw_data.get(le) as usize, s.size_of_raw_data.get(le) as usize)
        })
        .filter(|&(_, size)| size > 0)
        .collect();
    sections.sort_unstable();
    Ok(Skips {
        checksum: optional + OPT_CHECKSUM,
        security_entry: optional + OPT_DATA_DIRECTORIES + SECURITY_DIRECTORY * 8,
        size_of_headers: opt.size_of_headers() as usize,
        sections,
    })
}

/// The Authenticode SHA-256 of an unsigned image: the headers without the checksum and
/// the security directory entry, then every section's raw data in file order.
pub fn authenticode_digest(image: &[u8]) -> Result<[u8; 32], AuthenticodeError> {
    let s = skips(image)?;
    let end = s.sections.iter().map(|&(o, n)| o + n).max().unwrap_or(s.size_of_headers);
    if end != image.len() {
        return Err(AuthenticodeError::TrailingData);
    }
    let mut h = Sha256::new();
    h.update(&image[..s.checksum]);
    h.update(&image[s.checksum + 4..s.security_entry]);
    h.update(&image[s.security_entry + 8..s.size_of_headers]);
    for (off, size) in s.sections {
        h.update(&image[off..off + size]);
    }
    Ok(h.finalize().into())
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, AuthenticodeError> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: SHA256, parameters: Some(Any::null()) }
}

/// The DER `SignedData` (in a `ContentInfo`) for an image with this Authenticode digest.
pub fn signature(digest: &[u8; 32], key: &SecureBootKey) -> Result<Vec<u8>, AuthenticodeError> {
    // SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
    //                                       messageDigest DigestInfo }
    let data = der_sequence(&[&SPC_PE_IMAGE_DATA.to_der()?, &SPC_PE_IMAGE_DATA_VALUE])?;
    let digest_info = der_sequence(&[
        &sha256_algorithm().to_der()?,
        &OctetString::new(digest.to_vec())?.to_der()?,
    ])?;
    let indirect = der_sequence(&[&data, &digest_info])?;
    // Authenticode's quirk: the message digest covers the content's value, without the
    // SEQUENCE's own tag and length.
    let header_len = der_header_len(&indirect);
    let message_digest: [u8; 32] = Sha256::digest(&indirect[header_len..]).into();

    let mut signed_attrs = SetOfVec::new();
    signed_attrs.insert(attribute(CONTENT_TYPE, Any::encode_from(&SPC_INDIRECT_DATA)?)?)?;
    signed_attrs.insert(attribute(
        MESSAGE_DIGEST,
        Any::encode_from(&OctetString::new(message_digest.to_vec())?)?,
    )?)?;
    signed_attrs.insert(attribute(SPC_SP_OPUS_INFO, Any::from_der(&[0x30, 0x00])?)?)?;
    let signature = key.sign(&signed_attrs.to_der()?)?;

    let cert = &key.cert;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_algorithm(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(sha256_algorithm())?;
    let mut certificates = SetOfVec::new();
    certificates.insert(CertificateChoices::Certificate(cert.clone()))?;
    let mut signer_infos = SetOfVec::new();
    signer_infos.insert(signer)?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: SPC_INDIRECT_DATA,
            econtent: Some(Any::from_der(&indirect)?),
        },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    };
    let info = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&signed)? };
    Ok(info.to_der()?)
}

/// A DER SEQUENCE of already-encoded elements.
fn der_sequence(parts: &[&[u8]]) -> Result<Vec<u8>, AuthenticodeError> {
    let body: Vec<u8> = parts.concat();
    let mut out = vec![0x30];
    der::Length::try_from(body.len())?.encode_to_vec(&mut out)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The length of a DER element's tag and length octets (one-byte tag).
fn der_header_len(der: &[u8]) -> usize {
    match der.get(1) {
        Some(&l) if l & 0x80 != 0 => 2 + usize::from(l & 0x7f),
        _ => 2,
    }
}

/// Signs an unsigned image: appends the `WIN_CERTIFICATE` (8-byte aligned), points the
/// security directory at it and recomputes the PE checksum.
pub fn sign_image(image: &[u8], key: &SecureBootKey) -> Result<Vec<u8>, AuthenticodeError> {
    let s = skips(image)?;
    if image[s.security_entry..s.security_entry + 8].iter().any(|&b| b != 0) {
        return Err(AuthenticodeError::AlreadySigned);
    }
    let digest = authenticode_digest(image)?;
    let pkcs7 = signature(&digest, key)?;

    let mut out = image.to_vec();
    out.resize(image.len().next_multiple_of(8), 0);
    let table_at = out.len();
    let entry_len = (8 + pkcs7.len()).next_multiple_of(8);
    let entry_len32 = u32::try_from(entry_len).map_err(|_| AuthenticodeError::TooLarge)?;
    out.extend_from_slice(&entry_len32.to_le_bytes()); // dwLength
    out.extend_from_slice(&0x0200u16.to_le_bytes()); // WIN_CERT_REVISION_2_0
    out.extend_from_slice(&0x0002u16.to_le_bytes()); // WIN_CERT_TYPE_PKCS_SIGNED_DATA
    out.extend_from_slice(&pkcs7);
    out.resize(table_at + entry_len, 0);
    let table_at32 = u32::try_from(table_at).map_err(|_| AuthenticodeError::TooLarge)?;
    out[s.security_entry..s.security_entry + 4].copy_from_slice(&table_at32.to_le_bytes());
    out[s.security_entry + 4..s.security_entry + 8].copy_from_slice(&entry_len32.to_le_bytes());
    let sum = crate::emit::uki::pe_checksum(&out).map_err(|_| AuthenticodeError::TooLarge)?;
    out[s.checksum..s.checksum + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::uki::{UkiSection, write_uki};
    use crate::testkit::{Tool, efi_stub};
    use std::io::Cursor;
    use std::process::Command;

    fn new_key() -> (SecureBootKey, String) {
        use aws_lc_rs::encoding::AsDer;
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        let pkcs8 = rsa.as_der().expect("pkcs8");
        let pair = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key");
        let params = rcgen::CertificateParams::new(vec!["cairn test db".into()]).expect("params");
        let cert = params.self_signed(&pair).expect("cert");
        let sb = SecureBootKey::from_der(pkcs8.as_ref(), cert.der()).expect("key");
        (sb, cert.pem())
    }

    fn unsigned_uki(test: &str) -> Option<Vec<u8>> {
        let stub = efi_stub(test)?;
        let kernel = vec![0x5au8; 70_001];
        let mut k = &kernel[..];
        let mut c: &[u8] = b"ro quiet";
        let mut sections = [
            UkiSection { name: ".cmdline", len: 8, content: &mut c },
            UkiSection { name: ".linux", len: kernel.len() as u64, content: &mut k },
        ];
        let mut out = Cursor::new(Vec::new());
        write_uki(&stub, &mut sections, &mut out).ok()?;
        Some(out.into_inner())
    }

    #[test]
    fn der_header_lengths() {
        assert_eq!(der_header_len(&[0x30, 0x05]), 2);
        assert_eq!(der_header_len(&[0x30, 0x81, 0x80]), 3);
        assert_eq!(der_header_len(&[0x30, 0x82, 0x01, 0x00]), 4);
    }

    /// sbverify (sbsigntool) accepts our signature with the certificate, rejects it
    /// with another, and rejects an image changed after signing; signing is deterministic.
    #[test]
    fn sbverify_accepts_the_signature() {
        let test = "sign::authenticode::sbverify_accepts_the_signature";
        let Some(image) = unsigned_uki(test) else { return };
        let Some(dir) = Tool::external("sbverify", "apt-get install sbsigntool").scratch(test)
        else {
            return;
        };
        let (key, cert_pem) = new_key();
        let signed = sign_image(&image, &key).expect("sign");
        assert!(signed == sign_image(&image, &key).expect("sign again"), "deterministic");
        assert!(matches!(sign_image(&signed, &key), Err(AuthenticodeError::AlreadySigned)));

        let cert = dir.path().join("db.crt");
        std::fs::write(&cert, cert_pem).expect("cert");
        let path = dir.path().join("uki.efi");
        let verify = |bytes: &[u8], cert: &std::path::Path| {
            std::fs::write(&path, bytes).expect("write");
            Command::new("sbverify").arg("--cert").arg(cert).arg(&path).output().expect("sbverify")
        };
        let ok = verify(&signed, &cert);
        assert!(
            ok.status.success(),
            "{}{}",
            String::from_utf8_lossy(&ok.stdout),
            String::from_utf8_lossy(&ok.stderr)
        );
        let mut tampered = signed.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        assert!(!verify(&tampered, &cert).status.success(), "a flipped byte must fail");
        let (_, other_pem) = new_key();
        let other = dir.path().join("other.crt");
        std::fs::write(&other, other_pem).expect("cert");
        assert!(!verify(&signed, &other).status.success(), "another key must fail");
    }
}
