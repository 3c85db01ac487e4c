"""ASN.1 types and attribute OIDs asn1crypto lacks, one home for the CAdES signer and verifier.

EN 319 122-1 clause 5.5.2/5.5.3: the archive-time-stamp-v3 unsigned attribute and the
ats-hash-index-v3 its token carries. Importing this module registers both attributes with
asn1crypto, so a signature written or read here parses into real objects instead of Any.
"""

from __future__ import annotations

from asn1crypto import algos, cms, core

ID_AA_ETS_ARCHIVE_TIMESTAMP_V3 = "0.4.0.1733.2.4"
ID_AA_ATS_HASH_INDEX_V3 = "0.4.0.19122.1.5"
# the SignerInfo fields an archive-time-stamp-v3 imprint covers, in order (clause 5.5.3)
ARCHIVE_V3_SIGNER_INFO_FIELDS = (
    "version",
    "sid",
    "digest_algorithm",
    "signed_attrs",
    "signature_algorithm",
    "signature",
)


class _OctetStrings(core.SequenceOf):
    _child_spec = core.OctetString


class ATSHashIndexV3(core.Sequence):
    """EN 319 122-1 ATSHashIndexV3; hashIndAlgorithm is always written out (as DSS does).

    The standard lets hashIndAlgorithm default to SHA-256, but it and the field after it are
    both SEQUENCEs, which asn1crypto cannot tell apart: an index that leaves it out does not
    parse here, whatever the definition says."""

    _fields = [
        ("hash_ind_algorithm", algos.DigestAlgorithm),
        ("certificates_hash_index", _OctetStrings),
        ("crls_hash_index", _OctetStrings),
        ("unsigned_attr_values_hash_index", _OctetStrings),
    ]


class _SetOfATSHashIndexV3(core.SetOf):
    _child_spec = ATSHashIndexV3


class _SetOfContentInfo(core.SetOf):
    _child_spec = cms.ContentInfo


def _register_attributes() -> None:
    for oid, name, spec in (
        (ID_AA_ETS_ARCHIVE_TIMESTAMP_V3, "archive_time_stamp_v3", _SetOfContentInfo),
        (ID_AA_ATS_HASH_INDEX_V3, "ats_hash_index_v3", _SetOfATSHashIndexV3),
    ):
        cms.CMSAttributeType._map.setdefault(oid, name)
        cms.CMSAttribute._oid_specs.setdefault(cms.CMSAttributeType._map[oid], spec)


_register_attributes()
