"""Which columns hold personal data, and how sure we are: a rule-based PII classifier.

Each column is judged from two kinds of evidence: its **name** (``email``, ``customer_phone``,
``dob``...) and a **sample of its values**, checked by validators that a random string rarely
passes (a Luhn check for payment cards, mod-97 for IBANs, ``ipaddress`` for IPs, area rules for
US SSNs, the shape of e-mail addresses, phone numbers, street addresses, postcodes and names).
The confidence of a finding is high when both agree, lower when only the values speak (a 5-digit
number is a postcode only if the column says so), and never above the threshold on the name
alone. Free text (comments, notes, raw records) is flagged when values *contain* one of the
verifiable classes.

Numeric measures (floats, decimals) and booleans are never personal data here; integer columns
only when their name says phone, postcode, national id or card.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

__all__ = [
    "PII_CLASSES",
    "Finding",
    "PiiClass",
    "classify_column",
    "classify_frame",
    "is_valid_iban",
    "luhn_valid",
]

PiiClass = Literal[
    "email",
    "phone",
    "payment_card",
    "iban",
    "ip_address",
    "national_id",
    "date_of_birth",
    "person_name",
    "street_address",
    "postcode",
    "free_text",
]
PII_CLASSES: tuple[PiiClass, ...] = get_args(PiiClass)
#: values looked at per column (distinct, non-null)
SAMPLE_SIZE = 500


@dataclass(frozen=True)
class Finding:
    """One column judged to hold personal data of ``pii_class``."""

    column: str
    pii_class: PiiClass
    confidence: float
    sample_size: int
    matched: int
    evidence: str  # "name and values", "values", "name", "declared"


# -- validators ------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment cards, some national ids)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CR": 22,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24,
    "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def is_valid_iban(value: str) -> bool:
    """An IBAN with a known country length and a valid mod-97 check (spaces allowed)."""
    iban = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]+((x|ext\.?|#)\s?\d{1,5})?", re.IGNORECASE)
_PHONE_IN_TEXT = re.compile(r"(?<![\w.])(\+\d{1,3}[\s.-]?)?\(?\d{2,5}\)?[\s.-]\d{2,4}([\s.-]\d{2,5}){0,3}(?![\w.])")
_CARD_IN_TEXT = re.compile(r"(?<!\d)(\d[ -]?){11,18}\d(?!\d)")
_IBAN_IN_TEXT = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_IPV4_IN_TEXT = re.compile(r"(?<![\d.])(\d{1,3}\.){3}\d{1,3}(?![\d.])")
_SSN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
_SSN_IN_TEXT = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_NINO = re.compile(r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]")
_CODICE_FISCALE = re.compile(r"[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]")
_DNI = re.compile(r"(\d{8})-?([A-Z])")
_NIE = re.compile(r"([XYZ])(\d{7})-?([A-Z])")
_FR_NIR = re.compile(r"[12]\s?\d{2}\s?(0[1-9]|1[0-2]|[2-9]\d)\s?(\d{2}|2[AB])\s?\d{3}\s?\d{3}\s?(\d{2})")
_SE_PERSONNUMMER = re.compile(r"(\d{2})?\d{6}[-+]\d{4}")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_LETTER = r"[^\W\d_]"
_NAME_TOKEN = re.compile(rf"{_LETTER}\.|{_LETTER}(?:{_LETTER}|['\u2019\-])*")
_POSTCODES = [
    re.compile(r"\d{5}(-\d{4})?"),  # US, DE, FR, ES, IT, SE (also 123 45)
    re.compile(r"\d{3} \d{2}"),  # SE, CZ, SK, GR
    re.compile(r"\d{4}"),  # DK, AT, BE, CH, NO, AU
    re.compile(r"\d{4} ?[A-Z]{2}"),  # NL
    re.compile(r"\d{2}-\d{3}"),  # PL
    re.compile(r"\d{4}-\d{3}"),  # PT
    re.compile(r"\d{5}-\d{3}|\d{8}"),  # BR
    re.compile(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"),  # UK
    re.compile(r"[A-Z]\d[A-Z] ?\d[A-Z]\d"),  # CA
    re.compile(r"\d{3}-\d{4}"),  # JP
    re.compile(r"\d{6}"),  # IN, RU, CN
]
_ALNUM_POSTCODES = (7, 8)  # UK and CA shapes are specific enough without a hint

_STREET_WORDS = {
    # English
    "street", "st", "avenue", "ave", "road", "rd", "lane", "ln", "drive", "dr", "boulevard", "blvd", "way",
    "court", "ct", "place", "pl", "square", "sq", "terrace", "close", "crescent", "highway", "hwy", "parkway",
    "pkwy", "circle", "cir", "trail", "row", "walk", "mews", "alley", "plaza", "apt", "suite", "unit",
    # German, Dutch, Scandinavian
    "straße", "strasse", "str", "allee", "weg", "gasse", "platz", "ring", "damm", "ufer", "chaussee",
    "straat", "laan", "plein", "gracht", "kade", "hof", "singel", "dijk",
    "gade", "vej", "gatan", "gata", "vägen", "väg", "gränd", "veien", "vei", "gate",
    # French, Italian, Spanish, Portuguese, Polish
    "rue", "chemin", "allée", "impasse", "quai", "cours", "faubourg", "route",
    "via", "viale", "piazza", "corso", "vicolo", "largo", "borgo", "contrada", "strada", "piazzale",
    "calle", "avenida", "paseo", "camino", "carrer", "ronda", "glorieta", "travesía", "callejón", "carretera",
    "rua", "travessa", "praça", "estrada", "alameda", "vila", "praia", "ladeira",
    "ul", "ulica", "aleja", "al", "plac", "os", "osiedle",
}  # fmt: skip
_STREET_SUFFIXES = (
    "straße", "strasse", "str.", "allee", "weg", "gasse", "platz", "vej", "gade", "stræde", "gatan", "vägen", "gränd",
    "torget", "backen", "straat", "laan", "hof", "steeg", "dreef", "plein", "kade", "singel", "gracht", "dijk",
)  # fmt: skip

#: common given names across the locales the lake serves: evidence for names without a hint
_GIVEN_NAMES_TEXT = (
    "James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew Anthony "
    "Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Jason Edward Jeffrey Ryan "
    "Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander "
    "Patrick Frank Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary Douglas Peter Kyle Noah "
    "Ethan Jeremy Walter Christian Keith Roger Terry Austin Sean Gerald Carl Harold Dylan Arthur Lawrence Jordan "
    "Jesse Bryan Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie Elijah Wayne Randy Vincent Mason Roy "
    "Ralph Bobby Russell Bradley Philip Eugene Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica "
    "Sarah Karen Lisa Nancy Betty Sandra Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa "
    "Deborah Stephanie Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela "
    "Nicole Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane Olivia "
    "Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan Cheryl "
    "Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances Jean Alice Judy "
    "Isabella Julia Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie Theresa Diana Brittany Doris "
    "Kayla Alexis Lori Marie Tracy Wendy Sophie Mia Amelia Harry Oliver Charlie Alfie Freddie Archie Leo Oscar "
    "Hans Jürgen Jurgen Klaus Wolfgang Uwe Dieter Günter Stefan Andreas Jörg Frank Torsten Sven Lukas Jonas Leon "
    "Finn Felix Maximilian Paul Elias Ben Luca Tim Jan Jens Karsten Kai Dirk Ralf Heinz Horst Ursula Monika "
    "Petra Sabine Renate Helga Karin Brigitte Ingrid Gisela Susanne Birgit Andrea Claudia Heike Anja Katrin "
    "Nicole Julia Lena Lea Leonie Laura Jana Hannah Marie Mila Emilia Lina Greta Frieda Kordula "
    "Jean Pierre Michel Philippe Alain Nicolas Christophe Patrick Daniel Bernard Éric Eric Frédéric Laurent "
    "Olivier Julien Sébastien Thierry Stéphane David Pascal François Roland Émile Emile Louis Hugo Lucas Jules "
    "Gabriel Arthur Raphaël Marie Nathalie Isabelle Sylvie Catherine Françoise Valérie Christine Monique Sandrine "
    "Sophie Céline Chloé Chloe Camille Léa Manon Inès Ines Jade Louise Alice Lina Zoé Zoë Zoe Margaux "
    "José Antonio Manuel Francisco Juan David Javier Jesús Daniel Carlos Miguel Alejandro Rafael Pedro Pablo "
    "Ángel Sergio Fernando Jorge Luis Alberto Álvaro Diego Adrián Desiderio Lucía Carmen Josefa Isabel Dolores "
    "Pilar Teresa Ana Rosa Cristina Marta Mercedes Elena Laura Paula Sara Sofía Sofia Martina Valeria Telmo "
    "Giuseppe Giovanni Antonio Mario Luigi Francesco Angelo Vincenzo Pietro Salvatore Carlo Franco Domenico "
    "Bruno Paolo Michele Giorgio Aldo Sergio Luciano Marco Andrea Alessandro Matteo Lorenzo Leonardo Danilo "
    "Azeglio Giulia Francesca Chiara Sara Alessia Anna Rosa Giovanna Lucia Angela Elena Paola Laura Federica "
    "Piotr Krzysztof Andrzej Tomasz Paweł Michał Marcin Jakub Adam Łukasz Wiktor Kacper Szymon Anna Maria "
    "Katarzyna Małgorzata Agnieszka Barbara Ewa Krystyna Magdalena Zofia Ola Aleksandra Nicole "
    "Jan Pieter Kees Henk Willem Dirk Matthijs Sem Daan Lucas Levi Bram Ruud Sanne Emma Tess Fenna Lotte "
    "Annemijn Aylin Lars Anders Erik Nils Per Björn Bjorn Johan Karl Mikael Magnus Oskar Mads Laus Rasmus "
    "Søren Soren Kristina Ingrid Kerstin Birgitta Astrid Freja Ida Maja Anita Berta Liam Tom Mia Noah Benício "
    "Isaac Miguel Arthur Heitor Helena Alice Laura Manuela Valentina"
)
_GIVEN_NAMES = {n.lower() for n in _GIVEN_NAMES_TEXT.split()}

_HINTS: dict[PiiClass, tuple[re.Pattern[str], ...]] = {
    "email": (re.compile(r"(^|_)(e_?mail|mail)(_|$)|emailaddress|email"),),
    "phone": (re.compile(r"(^|_)(phone|telephone|tel|mobile|cell|fax|msisdn|phonenumber|telefon|telefono)(_|$|\d)"),),
    "payment_card": (re.compile(r"(^|_)(card|cc|pan|creditcard|credit_card|cardnumber|card_number|card_no)(_|$)"),),
    "iban": (re.compile(r"(^|_)(iban|bank_account|account_number|bban)(_|$)"),),
    "ip_address": (re.compile(r"(^|_)(ip|ipv4|ipv6|ip_address|ipaddr|remote_addr|client_addr)(_|$)"),),
    "national_id": (
        re.compile(
            r"(^|_)(ssn|social_security|national_id|nin|nino|tax_id|taxid|passport|nif|nie|dni|nir|pesel|bsn|"
            r"codice_fiscale|fiscal_code|personnummer|id_number|national_number|sin)(_|$)"
        ),
    ),
    "date_of_birth": (re.compile(r"(^|_)(birth|birthday|dob|birthdate|born|date_of_birth|geburtsdatum)(_|$)"),),
    "person_name": (
        re.compile(r"(^|_)(first|last|given|family|sur|middle|full|maiden|fore)_?name(_|$)"),
        re.compile(r"(^|_)(surname|forename|firstname|lastname|fullname|givenname)(_|$)"),
        re.compile(
            r"(^|_)(customer|person|contact|user|employee|patient|member|holder|account_holder|cardholder|"
            r"recipient|buyer|owner|author|client|passenger|guest|student)_name(_|$)"
        ),
        re.compile(r"^name$"),
    ),
    "street_address": (
        re.compile(
            r"(^|_)(street|address|addr|address_line\d?|line_?\d|street_address|road|strasse|rue|via|calle)(_|$)"
        ),
    ),
    "postcode": (re.compile(r"(^|_)(postcode|post_code|postal|postal_code|zip|zipcode|zip_code|plz|cap|cp)(_|$)"),),
    "free_text": (
        re.compile(r"(^|_)(comment|comments|note|notes|message|remark|remarks|feedback|body|text|raw|free_text)(_|$)"),
    ),
}
#: names that look like a hint but are something else
_NOT_NAME = re.compile(
    r"(store|product|brand|company|city|file|host|table|column|event|category|item|sku|street|country|region|"
    r"bank|shop|team|dataset|job|project|org|vendor|supplier|merchant|display|app|page|device|browser|domain|"
    r"schema|model|feature|file|source|campaign|segment|currency|channel|status)_?name"
)
_NOT_ADDRESS = re.compile(r"(email|e_mail|mail|ip|mac|web|url|wallet|remote|client)_?(address|addr)|address_id")


def _tokens(name: str) -> str:
    """snake_case of a column name (``customerEmail`` -> ``customer_email``)."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def name_hints(column: str) -> set[PiiClass]:
    """The classes a column's name points to."""
    name = _tokens(column)
    found: set[PiiClass] = set()
    for pii_class, patterns in _HINTS.items():
        if any(p.search(name) for p in patterns):
            found.add(pii_class)
    if "person_name" in found and _NOT_NAME.search(name):
        found.discard("person_name")
    if "street_address" in found and _NOT_ADDRESS.search(name):
        found.discard("street_address")
    if "email" in found:
        found.discard("street_address")
    if "ip_address" in found:
        found.discard("street_address")
    return found


# -- value tests -----------------------------------------------------------------------------------


def _is_email(v: str) -> bool:
    return bool(_EMAIL.fullmatch(v.strip()))


def _is_ip(v: str) -> bool:
    try:
        ipaddress.ip_address(v.strip().strip("[]"))
    except ValueError:
        return False
    return True


def _is_phone(v: str) -> bool:
    s = v.strip()
    if not _PHONE_CHARS.fullmatch(s) or _DATE_LIKE.fullmatch(s) or _SSN.fullmatch(s) or _is_ip(s):
        return False
    if re.match(r"\d{4}-\d{2}-\d{2}", s):  # date-prefixed identifiers (2024-01-02-000123)
        return False
    digits = re.sub(r"\D", "", re.split(r"(?i)x|ext|#", s)[0])
    if not 7 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d+\.\d+", s):  # a decimal number
        return False
    if s.isdigit():  # bare digits: a phone only when it looks dialled (leading 0 or 00)
        return s.startswith("0") and 9 <= len(s) <= 12
    return True


def _card_digits(v: str) -> str | None:
    s = v.strip()
    if not re.fullmatch(r"\d[\d -]{10,22}\d", s):
        return None
    digits = re.sub(r"[ -]", "", s)
    return digits if 12 <= len(digits) <= 19 else None


def _is_card(v: str) -> bool:
    digits = _card_digits(v)
    if digits is None or not luhn_valid(digits):
        return False
    # issuer prefixes (Visa, Mastercard, Amex, Discover, JCB, Diners, Maestro, UnionPay)
    return bool(re.match(r"4|5[0-5]|2[2-7]|3[47]|6|35|30|36|38|39", digits))


def _dni_valid(v: str) -> bool:
    m = _DNI.fullmatch(v)
    if m:
        return _DNI_LETTERS[int(m.group(1)) % 23] == m.group(2)
    m = _NIE.fullmatch(v)
    if m:
        number = "XYZ".index(m.group(1)) * 10_000_000 + int(m.group(2))
        return _DNI_LETTERS[number % 23] == m.group(3)
    return False


def _nir_valid(v: str) -> bool:
    compact = v.replace(" ", "")
    if not _FR_NIR.fullmatch(v) and not _FR_NIR.fullmatch(compact):
        return False
    body = compact[:13].replace("2A", "19").replace("2B", "18")
    return body.isdigit() and 97 - int(body) % 97 == int(compact[13:15])


def _pesel_valid(v: str) -> bool:
    if not re.fullmatch(r"\d{11}", v):
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    return (10 - sum(int(d) * w for d, w in zip(v[:10], weights, strict=True)) % 10) % 10 == int(v[10])


def _bsn_valid(v: str) -> bool:
    if not re.fullmatch(r"\d{9}", v):
        return False
    total = sum(int(d) * w for d, w in zip(v[:8], range(9, 1, -1), strict=True)) - int(v[8])
    return total % 11 == 0 and v != "000000000"


def _cpf_valid(v: str) -> bool:
    if not re.fullmatch(r"\d{11}", v) or len(set(v)) == 1:
        return False
    for n in (9, 10):
        total = sum(int(d) * w for d, w in zip(v[:n], range(n + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != int(v[n]):
            return False
    return True


def _is_national_id(v: str, hinted: bool) -> bool:
    s = v.strip().upper()
    if _SSN.fullmatch(s) or _NINO.fullmatch(s) or _CODICE_FISCALE.fullmatch(s) or _dni_valid(s) or _nir_valid(s):
        return True
    if _SE_PERSONNUMMER.fullmatch(s) and luhn_valid(re.sub(r"\D", "", s)[-10:]):
        return True
    compact = re.sub(r"[\s.-]", "", s)
    # checksummed digit strings: a random number passes one check in ten, so a column where
    # nearly all values pass is an id column
    if _pesel_valid(compact) or _bsn_valid(compact) or _cpf_valid(compact):
        return True
    if hinted:  # shapes that are ids only when the column says so
        return bool(
            re.fullmatch(r"[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-Z]", s)  # UK NINO, incl. test prefixes
            or re.fullmatch(r"\d{9}", compact)
            or re.fullmatch(r"\d{2} ?\d{6} ?[A-Z] ?\d{3}", s)  # DE Rentenversicherungsnummer
        )
    return False


_ISO_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ].*)?")
_DMY_DATE = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})")


def _as_date(v: object) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if not isinstance(v, str):
        return None
    s = v.strip()
    m = _ISO_DATE.fullmatch(s)
    candidates: list[tuple[int, int, int]] = []
    if m:
        candidates.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    else:
        m = _DMY_DATE.fullmatch(s)
        if m:  # day first (most locales), then month first (US)
            a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
            candidates += [(year, b, a), (year, a, b)]
    for year, month, day in candidates:
        try:
            return dt.date(year, month, day)
        except ValueError:
            continue
    return None


def _name_shape(v: str) -> bool:
    s = v.strip()
    if not 2 <= len(s) <= 60 or any(ch.isdigit() for ch in s):
        return False
    parts = s.replace(",", " ").split()
    if not 1 <= len(parts) <= 5:
        return False
    particles = {"de", "da", "del", "della", "di", "van", "von", "der", "den", "la", "le", "du", "dos", "das", "y", "e", "ter", "zu", "af", "bin"}  # fmt: skip
    for part in parts:
        if part.lower() in particles:
            continue
        if not _NAME_TOKEN.fullmatch(part) or not part[0].isupper():
            return False
    return True


def _given_name_hit(v: str) -> bool:
    parts = [p.strip(".,").lower() for p in v.split()]
    return any(p in _GIVEN_NAMES for p in parts)


def _street_shape(v: str) -> tuple[bool, bool, bool]:
    """(has a street word and a number, starts with a house number or spans several lines, has
    words and a number at all).

    "Classic Chair 14" has the words-then-number shape of "Hannasteeg 7" too: without a street
    word or a hint, only a leading house number or a multi-line address counts."""
    s = v.strip()
    lines = s.splitlines()
    first_line = lines[0] if lines else s
    words = re.findall(rf"{_LETTER}(?:{_LETTER}|\.)*", first_line.lower())
    has_word = any(w.strip(".") in _STREET_WORDS for w in words) or any(
        w.endswith(_STREET_SUFFIXES) and len(w) > 6 for w in words
    )
    has_number = bool(re.search(r"\d", first_line))
    leading_number = bool(re.fullmatch(rf"\d+[A-Za-z]?,?\s+{_LETTER}[^\d]*", first_line)) and len(words) >= 2
    multi_line = len(lines) >= 2 and has_number and bool(words)
    return has_word and has_number, leading_number or multi_line, has_number and bool(words)


def _is_postcode(v: str) -> bool:
    s = v.strip().upper()
    return any(p.fullmatch(s) for p in _POSTCODES)


def _embedded(v: str) -> bool:
    """Free text that contains a verifiable identifier."""
    if _EMAIL_IN_TEXT.search(v) or _SSN_IN_TEXT.search(v):
        return True
    for m in _CARD_IN_TEXT.finditer(v):
        if _is_card(m.group(0)):
            return True
    for m in _IBAN_IN_TEXT.finditer(v):
        if is_valid_iban(m.group(0)):
            return True
    for m in _IPV4_IN_TEXT.finditer(v):
        if _is_ip(m.group(0)):
            return True
    for m in _PHONE_IN_TEXT.finditer(v):
        found = m.group(0)
        digits = sum(ch.isdigit() for ch in found)
        separators = sum(ch in " .-()" for ch in found.strip())
        if _is_phone(found) and (found.lstrip().startswith("+") or (digits >= 9 and separators >= 2)):
            return True
    return False


# -- scoring ---------------------------------------------------------------------------------------


def _fraction(values: Sequence[str], test: Callable[[str], bool]) -> tuple[float, int]:
    if not values:
        return 0.0, 0
    hits = sum(1 for v in values if test(v))
    return hits / len(values), hits


def _score(share: float, hinted: bool, *, specific: float, with_hint: float = 0.97) -> float:
    """Confidence from the share of values that pass a validator and whether the name agrees.

    ``specific``: how far values alone can be trusted (a Luhn-valid 16-digit string is a card far
    more surely than a 5-digit string is a postcode)."""
    if hinted:
        if share >= 0.5:
            return round(min(0.99, with_hint - 0.1 * (1 - share)), 3)
        return round(0.3 + 0.4 * share, 3)
    if share < 0.5:
        return round(share * specific * 0.8, 3)
    return round(specific * share, 3)


def classify_column(
    name: str, values: Iterable[object], *, dtype: pl.DataType | None = None, min_confidence: float = 0.0
) -> Finding | None:
    """The most likely PII class of one column, or None (nothing at ``min_confidence`` or above)."""
    raw = [v for v in values if v is not None]
    hints = name_hints(name)
    numeric_measure = dtype is not None and (dtype.is_float() or dtype.is_decimal() or dtype == pl.Boolean)
    if numeric_measure or dtype == pl.Time or isinstance(dtype, pl.Duration):
        return None
    temporal = dtype is not None and dtype.is_temporal()
    integer = dtype is not None and dtype.is_integer()
    if integer and not hints & {"phone", "postcode", "national_id", "payment_card"}:
        return None
    if dtype is not None and isinstance(dtype, pl.List | pl.Struct | pl.Array | pl.Binary):
        return None
    sample = list(dict.fromkeys(raw))[:SAMPLE_SIZE]
    texts = [v if isinstance(v, str) else str(v) for v in sample]
    texts = [t for t in texts if t.strip()]
    size = len(texts)
    scores: dict[PiiClass, tuple[float, int]] = {}

    def put(pii_class: PiiClass, share_hits: tuple[float, int], *, specific: float, with_hint: float = 0.97) -> None:
        share, hits = share_hits
        scores[pii_class] = (_score(share, pii_class in hints, specific=specific, with_hint=with_hint), hits)

    probe = [_as_date(v) for v in sample[:20]]
    dates = [_as_date(v) for v in sample] if sum(d is not None for d in probe) >= len(probe) * 0.8 else probe
    date_share = sum(d is not None for d in dates) / len(dates) if dates else 0.0
    if temporal or date_share >= 0.8:
        valid = [d for d in dates if d is not None]
        today = dt.date.today()
        plausible = [d for d in valid if dt.date(1900, 1, 1) <= d <= today]
        share = len(plausible) / len(sample) if sample else 0.0
        span_years = (max(valid) - min(valid)).days / 365.25 if len(valid) > 1 else 0.0
        ages = sorted((today - d).days / 365.25 for d in plausible)
        median_age = ages[len(ages) // 2] if ages else 0.0
        lifelike = span_years >= 20 and 15 <= median_age <= 95
        if "date_of_birth" in hints:
            scores["date_of_birth"] = (_score(share, True, specific=0.0), len(plausible))
        elif lifelike and share >= 0.9:
            # dates spread over decades with adult ages look like birth dates, but so do other
            # historical dates: values alone stay below the default threshold
            scores["date_of_birth"] = (0.7, len(plausible))
        if temporal:
            return _best(name, scores, size or len(sample), hints, min_confidence)

    if size == 0:
        return _best(name, scores, 0, hints, min_confidence)

    if "free_text" in hints:  # raw records, notes: whole-value validators, then embedded identifiers
        put("email", _fraction(texts, _is_email), specific=0.98)
        put("ip_address", _fraction(texts, _is_ip), specific=0.95)
        put("phone", _fraction(texts, _is_phone), specific=0.88)
        return _free_text(name, texts, scores, hints, min_confidence)
    put("email", _fraction(texts, _is_email), specific=0.98)
    put("ip_address", _fraction(texts, _is_ip), specific=0.95)
    put("iban", _fraction(texts, is_valid_iban), specific=0.99)
    put("payment_card", _fraction(texts, _is_card), specific=0.97)
    put("national_id", _fraction(texts, lambda v: _is_national_id(v, "national_id" in hints)), specific=0.9)
    put("phone", _fraction(texts, _is_phone), specific=0.88)
    street = [_street_shape(v) for v in texts]
    strong = sum(1 for word, _, _ in street if word) / size
    if "street_address" in hints:
        hits = sum(1 for _, _, loose in street if loose)
        scores["street_address"] = (_score(hits / size, True, specific=0.0), hits)
    else:  # a street word is strong evidence; a house number first (or several lines) a little less
        hits = sum(1 for word, shape, _ in street if word or shape)
        scores["street_address"] = (
            max(_score(strong, False, specific=0.95), _score(hits / size, False, specific=0.86)),
            hits,
        )
    postcode_share, postcode_hits = _fraction(texts, _is_postcode)
    alnum = _fraction([t for t in texts if not t.strip().isdigit()], _is_postcode)[0] if texts else 0.0
    specific = 0.86 if alnum >= 0.8 and postcode_share >= 0.8 else 0.45
    scores["postcode"] = (_score(postcode_share, "postcode" in hints, specific=specific), postcode_hits)
    shape_share, shape_hits = _fraction(texts, _name_shape)
    given_share = _fraction(texts, _given_name_hit)[0]
    multi_token = sum(1 for t in texts if len(t.split()) >= 2) / size
    if "person_name" in hints:
        name_conf = _score(shape_share, True, specific=0.0, with_hint=0.96)
    elif shape_share >= 0.9 and given_share >= 0.35 and multi_token >= 0.6:
        name_conf = round(min(0.92, 0.55 + 0.6 * given_share), 3)
    elif shape_share >= 0.9 and given_share >= 0.6:
        name_conf = round(min(0.9, 0.4 + 0.6 * given_share), 3)
    else:
        name_conf = round(0.5 * shape_share * given_share, 3)
    scores["person_name"] = (name_conf, shape_hits)
    return _free_text(name, texts, scores, hints, min_confidence)


def _free_text(
    name: str,
    texts: Sequence[str],
    scores: dict[PiiClass, tuple[float, int]],
    hints: set[PiiClass],
    min_confidence: float,
) -> Finding | None:
    """Text that is not one identifier but contains some: free text with PII."""
    size = len(texts)
    best_full = max((s for s, _ in scores.values()), default=0.0)
    long_text = sum(1 for t in texts if len(t) >= 20 and " " in t.strip()) / size
    if best_full < 0.5 and (long_text >= 0.5 or "free_text" in hints):
        share, hits = _fraction(texts, _embedded)
        if hits >= 2 and share >= 0.02:
            base = 0.82 if "free_text" in hints else 0.8
            scores["free_text"] = (round(min(0.99, base + 0.4 * share), 3), hits)
        elif hits and "free_text" in hints:
            scores["free_text"] = (0.75, hits)
    return _best(name, scores, size, hints, min_confidence)


def _best(
    name: str, scores: dict[PiiClass, tuple[float, int]], size: int, hints: set[PiiClass], min_confidence: float
) -> Finding | None:
    if not scores:
        return None
    # ties go to the more specific validator (declaration order of PII_CLASSES)
    pii_class = max(scores, key=lambda c: (scores[c][0], -PII_CLASSES.index(c)))
    confidence, hits = scores[pii_class]
    if confidence <= 0 or confidence < min_confidence:
        return None
    evidence = "name and values" if pii_class in hints and hits else ("name" if pii_class in hints else "values")
    return Finding(name, pii_class, confidence, size, hits, evidence)


def classify_frame(frame: pl.DataFrame, *, min_confidence: float = 0.0, skip: Iterable[str] = ()) -> list[Finding]:
    """A finding per column of ``frame`` that holds PII (sampled: up to ``SAMPLE_SIZE`` distinct values)."""
    skipped = set(skip)
    findings = []
    for column in frame.columns:
        if column in skipped:
            continue
        series = frame.get_column(column)
        values = series.drop_nulls().unique(maintain_order=True).head(SAMPLE_SIZE).to_list()
        finding = classify_column(column, values, dtype=series.dtype, min_confidence=min_confidence)
        if finding is not None:
            findings.append(finding)
    return findings
