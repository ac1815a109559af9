"""A cluster's own certificates: mutual TLS between its client, scheduler and workers.

Each cluster makes a fresh certificate authority and two certificates it signs: one for
the cluster's tasks (scheduler and workers share it; distributed checks the CA, not host
names) and one for the client. The CA's key is discarded once they are signed, so nothing
else can ever be signed by it. The client's key stays in this process's memory
(distributed accepts PEM text where it takes file paths); the tasks' reach them through
a Secrets Manager secret (:mod:`starburst_dask.ecs.secret`), never through the task
definition, the RunTask request or the logs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed.security import Security

#: Validity when the cluster has no maximum lifetime.
UNLIMITED_VALIDITY = datetime.timedelta(days=365)
#: Validity beyond the maximum lifetime (a task starts after the certificates are made),
#: and before now (clocks of the client and of AWS's hosts differ a little).
VALIDITY_MARGIN = datetime.timedelta(hours=1)
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: The secret's JSON keys: the CA certificate, the tasks' certificate and key.
SECRET_KEYS = ("ca", "cert", "key")
#: The tasks' dask config (``distributed.comm.tls.*``, by environment variable) each from
#: a key of the secret: scheduler and workers present the same certificate.
TASK_SECRETS = {
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "ca",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT": "cert",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY": "key",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT": "cert",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY": "key",
}


@dataclasses.dataclass(frozen=True, repr=False)
class ClusterCertificates:
    """The PEM texts of one cluster's CA certificate and of its two key pairs."""

    ca: str
    task_cert: str
    task_key: str
    client_cert: str
    client_key: str

    def __repr__(self) -> str:  # never the keys
        return f"<{type(self).__name__}>"

    def security(self) -> Security:
        """The client's ``distributed.Security``: mutual TLS, required, from memory."""
        return Security(
            require_encryption=True,
            tls_ca_file=self.ca,
            tls_client_cert=self.client_cert,
            tls_client_key=self.client_key,
        )

    def secret_string(self) -> str:
        """The tasks' secret, as JSON: ``ca``, ``cert`` and ``key`` (:data:`SECRET_KEYS`)."""
        values = (self.ca, self.task_cert, self.task_key)
        return json.dumps(dict(zip(SECRET_KEYS, values, strict=True)))


def make(cluster: str, lifetime: float | None) -> ClusterCertificates:
    """A new CA, and the tasks' and the client's certificates it signed.

    Parameters
    ----------
    cluster : str
        The cluster's name, in the certificates' subjects.
    lifetime : float, optional
        The cluster's maximum lifetime in seconds (``None``: unlimited): the certificates
        are valid that long, plus :data:`VALIDITY_MARGIN`.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (
        UNLIMITED_VALIDITY if lifetime is None else datetime.timedelta(seconds=lifetime)
    ) + VALIDITY_MARGIN
    start, end = now - CLOCK_SKEW, now + validity
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{cluster} CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(role: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{cluster} {role}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(  # each side of a dask connection may be its client or server
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return _pem(cert), _key_pem(key)

    task_cert, task_key = issue("tasks")
    client_cert, client_key = issue("client")
    return ClusterCertificates(_pem(ca), task_cert, task_key, client_cert, client_key)


def _name(common_name: str) -> x509.Name:
    # A common name is at most 64 characters (RFC 5280's ub-common-name).
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[-64:])])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
