//! THROWAWAY TEST-ONLY KEYS. Generated with openssl solely for these unit tests;
//! they protect nothing and must never be used outside `cargo test`.

/// Test-only EC P-256 private key (PKCS#8). Throwaway; not a secret.
pub(super) const EC_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRYa75jamICB54jip
9KD4vF6jwp/TanGKUsB3FhbWXRChRANCAATULCIOcC3hYc0wIcddUWetjChG6lAK
zTLzRLzSQIZcXso7nOOSqNCUEvgr6FFlvrHtD4LJv6KBLWgWxSkAavMu
-----END PRIVATE KEY-----
";

/// Public half of [`EC_PRIVATE_PEM`].
pub(super) const EC_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1CwiDnAt4WHNMCHHXVFnrYwoRupQ
Cs0y80S80kCGXF7KO5zjkqjQlBL4K+hRZb6x7Q+Cyb+igS1oFsUpAGrzLg==
-----END PUBLIC KEY-----
";

/// JWK coordinates of [`EC_PUBLIC_PEM`].
pub(super) const EC_X: &str = "1CwiDnAt4WHNMCHHXVFnrYwoRupQCs0y80S80kCGXF4";
pub(super) const EC_Y: &str = "yjuc45Ko0JQS-CvoUWW-se0Pgsm_ooEtaBbFKQBq8y4";

/// Test-only RSA-2048 private key (PKCS#8). Throwaway; not a secret.
pub(super) const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC4nkLcd17Gyv5H
TsYRoXb2b3PwqUEx3nmdxwXeJBZvqEfdXbizhEMMeuPmJlobZrqBN2eJGAl45XHi
1/2M4GAz1B1N8LhbuG3nxmM21gACODKsjOZk2wWT+R3+rcn58QhgQdQYzKBF1rW1
j1WIJtrzpIAxYhTP/6RaNINy/ZM6K4vKfqXLJ/vpG2i+iW9xCivVGIYZSBDOQbR2
FoaW186xfMuOiU7fhDGfzrPz+l8NB5Qz6PkOepZoSR/Ex5PV7ZkKB7cDRjmw8dGF
Dxp1tqY3LAPHIurcM40h8ZAdkXkp/Tcnimd0jbMUAxMhPwq1dN0MxujxVgeL38qG
QaOni8TpAgMBAAECggEAM58lCOpj2Ognw56WKZXhYrT1UUSyUxRnIyPkUyH6GAyQ
06gCHkgMS3ANS2xL47+MxNbOH3pWI7TcbFaCsiKHI9bavtFha1wddyJ02X9rDzPR
j4fyYB8R5zdQGMdVY4rvEaM2gByvb/fCZVsHyoM608eahLRtJ1/O/94RJ1UaFrhd
2GjW2mFDzcFjzEhEmdoVbcVodir1/7oao5Fb9xv7oUqo5jvXjmENhq+bYJKK/nAT
XctNPSrc5UhQAu6AB7Tqyedihu5+VQcJuOEhIs1MlD5BamrMw33klLu5e0Xiu9PJ
pc11MqHm00dQW7jH8UIO4DlGEJwr2nW02lB5rUyB5QKBgQD2sgeYJxA85TC1IzXG
IAsSqACwumLgJEyhnwIM0w8wmTlwOhNm4/QJV/o3Xd9paHpzVmi55Z5JIdd06KHP
DyhW5udEkf+1Wy/D7ufYYSJCV3DCXYy/3Xi8LOKHWR810y6aG5KTb4XXD94BT0qr
3KBdFJ3b158Y9jmq0zv9JrMHhwKBgQC/lNgghn0cHGreVOAPtvfCmy3Kggmw+4pk
x1mMvlJ2irqoY82gbOEPEYNKzwxPo0BIP5pUBjMYtD7FSapCsvKnZOizZgPuqtDr
rrqHjdjWdlD2cKqW7E7iE2If7fzqQanILYXDZOQwCwtFqYmWrzo6Oi4wJxvGWy08
tvT/kKwMDwKBgCrzH+NbmbYgaPSAZtJRrdvXqBccvC4t47GXz3GQJWreomNpmQsm
0Mv3pzaQf18Is5j1CFKlKYOuAqb2AYXdK7bFiKoliRF4CL7iDzda4e4O7zDHvMOC
uYx5fA74cziZxdlKx6AnoHOq7Yno1iVJyhmqhzlJNwfPhoa5NA6E+FJtAoGBALO9
Q6AQTWSITMNWwfg8YuqTiDyMD+eZt1ehqCRhkyBgO4ssR4kRXX0zowgWhKhasz6V
XYcjYeD1ikayPCjjlsDx7VgSh/HtFKFphtsSe7OJwZ/USFfcUI3OPatTLovhGxcR
joOpLmTcl7C9xLY4o9ppJ1hJ+Mb6V9C0ndr/skqFAoGBALWnLBKgvZb4LK9ot2/h
T3VGIrOAzqGMSs4KThlJ1VOqwMoUPjAyiIw1ywdOpEGpOkaAkrukDCPpqT/WGg9k
gDspDfCD6aqU8IVWWLpWvCWTe+HsQXTJMyYtXyJRmTGijQL2B2N9KZbYWnbYmBTI
Nxo1hLYGRLmNwkcssptBjx5+
-----END PRIVATE KEY-----
";

/// Public half of [`RSA_PRIVATE_PEM`].
pub(super) const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuJ5C3Hdexsr+R07GEaF2
9m9z8KlBMd55nccF3iQWb6hH3V24s4RDDHrj5iZaG2a6gTdniRgJeOVx4tf9jOBg
M9QdTfC4W7ht58ZjNtYAAjgyrIzmZNsFk/kd/q3J+fEIYEHUGMygRda1tY9ViCba
86SAMWIUz/+kWjSDcv2TOiuLyn6lyyf76RtovolvcQor1RiGGUgQzkG0dhaGltfO
sXzLjolO34Qxn86z8/pfDQeUM+j5DnqWaEkfxMeT1e2ZCge3A0Y5sPHRhQ8adbam
NywDxyLq3DONIfGQHZF5Kf03J4pndI2zFAMTIT8KtXTdDMbo8VYHi9/KhkGjp4vE
6QIDAQAB
-----END PUBLIC KEY-----
";

/// JWK modulus of [`RSA_PUBLIC_PEM`] (exponent is AQAB).
pub(super) const RSA_N: &str = "uJ5C3Hdexsr-R07GEaF29m9z8KlBMd55nccF3iQWb6hH3V24s4RDDHrj5iZaG2a6gTdniRgJeOVx4tf9jOBgM9QdTfC4W7ht58ZjNtYAAjgyrIzmZNsFk_kd_q3J-fEIYEHUGMygRda1tY9ViCba86SAMWIUz_-kWjSDcv2TOiuLyn6lyyf76RtovolvcQor1RiGGUgQzkG0dhaGltfOsXzLjolO34Qxn86z8_pfDQeUM-j5DnqWaEkfxMeT1e2ZCge3A0Y5sPHRhQ8adbamNywDxyLq3DONIfGQHZF5Kf03J4pndI2zFAMTIT8KtXTdDMbo8VYHi9_KhkGjp4vE6Q";
