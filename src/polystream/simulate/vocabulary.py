"""Word lists the simulator draws names, titles and texts from.

Everything here is plain text without quotes or backslashes, so the fast JSON path can embed
it safely; accented names are deliberate (UTF-8 must survive every store).
"""

from __future__ import annotations

from typing import Final

#: (display form, ASCII form for e-mail addresses)
FIRST_NAMES: Final = (
    ("Ana", "ana"),
    ("João", "joao"),
    ("Maria", "maria"),
    ("Lucas", "lucas"),
    ("Sofia", "sofia"),
    ("Liam", "liam"),
    ("Emma", "emma"),
    ("Noah", "noah"),
    ("Olivia", "olivia"),
    ("Mateo", "mateo"),
    ("Léa", "lea"),
    ("Hugo", "hugo"),
    ("Chloé", "chloe"),
    ("Jonas", "jonas"),
    ("Mia", "mia"),
    ("Finn", "finn"),
    ("Aiko", "aiko"),
    ("Haruto", "haruto"),
    ("Yuna", "yuna"),
    ("Min-jun", "minjun"),
    ("Seo-yeon", "seoyeon"),
    ("Arjun", "arjun"),
    ("Priya", "priya"),
    ("Omar", "omar"),
    ("Layla", "layla"),
    ("Kwame", "kwame"),
    ("Amara", "amara"),
    ("Elif", "elif"),
    ("Mehmet", "mehmet"),
    ("Zofia", "zofia"),
    ("Jakub", "jakub"),
    ("Astrid", "astrid"),
    ("Lars", "lars"),
    ("Giulia", "giulia"),
    ("Marco", "marco"),
    ("Inès", "ines"),
    ("Tomás", "tomas"),
    ("Camila", "camila"),
    ("Diego", "diego"),
    ("Nora", "nora"),
    ("Ethan", "ethan"),
    ("Ava", "ava"),
    ("Felix", "felix"),
    ("Clara", "clara"),
    ("Rafael", "rafael"),
    ("Beatriz", "beatriz"),
    ("Sven", "sven"),
    ("Ingrid", "ingrid"),
)

LAST_NAMES: Final = (
    ("Silva", "silva"),
    ("Santos", "santos"),
    ("Müller", "muller"),
    ("Schmidt", "schmidt"),
    ("García", "garcia"),
    ("Martínez", "martinez"),
    ("Rossi", "rossi"),
    ("Bianchi", "bianchi"),
    ("Dubois", "dubois"),
    ("Lefèvre", "lefevre"),
    ("Smith", "smith"),
    ("Johnson", "johnson"),
    ("Brown", "brown"),
    ("Taylor", "taylor"),
    ("Nowak", "nowak"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Sato", "sato"),
    ("Kim", "kim"),
    ("Park", "park"),
    ("Patel", "patel"),
    ("Sharma", "sharma"),
    ("Haddad", "haddad"),
    ("Okafor", "okafor"),
    ("Mensah", "mensah"),
    ("Yılmaz", "yilmaz"),  # noqa: RUF001 - the Turkish dotless i, on purpose
    ("Andersson", "andersson"),
    ("Nielsen", "nielsen"),
    ("Janssen", "janssen"),
    ("de Vries", "devries"),
    ("Costa", "costa"),
    ("Ferreira", "ferreira"),
    ("López", "lopez"),
    ("Hernández", "hernandez"),
    ("Moreau", "moreau"),
    ("Fischer", "fischer"),
    ("Weber", "weber"),
    ("Novak", "novak"),
    ("Ivanova", "ivanova"),
    ("O'Brien", "obrien"),
    ("Murphy", "murphy"),
    ("Walsh", "walsh"),
)

EMAIL_DOMAINS: Final = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "post.example.org",
)

#: (country, weight, audio languages in order of preference)
COUNTRIES: Final = (
    ("US", 22, ("en",)),
    ("GB", 8, ("en",)),
    ("CA", 4, ("en", "fr")),
    ("DE", 8, ("de", "en")),
    ("FR", 8, ("fr", "en")),
    ("ES", 6, ("es", "en")),
    ("PT", 3, ("pt", "en")),
    ("BR", 9, ("pt-BR", "en")),
    ("MX", 5, ("es-419", "en")),
    ("IT", 5, ("it", "en")),
    ("NL", 3, ("nl", "en")),
    ("PL", 3, ("pl", "en")),
    ("SE", 2, ("sv", "en")),
    ("JP", 5, ("ja", "en")),
    ("KR", 3, ("ko", "en")),
    ("IN", 6, ("hi", "en")),
)

#: (original language, weight)
TITLE_LANGUAGES: Final = (
    ("en", 55),
    ("fr", 7),
    ("es", 7),
    ("ko", 6),
    ("ja", 6),
    ("de", 4),
    ("it", 3),
    ("pt", 2),
    ("hi", 3),
    ("sv", 2),
    ("da", 1),
    ("tr", 2),
    ("pt-BR", 2),
)

SUBTITLE_LANGUAGES: Final = (
    "en",
    "es",
    "fr",
    "de",
    "pt-BR",
    "it",
    "ja",
    "ko",
    "es-419",
    "zh-Hant-TW",
    "ar",
    "nl",
    "pl",
    "sv",
    "tr",
    "hi",
)

#: (genre, weight): how common a genre is in the catalogue.
GENRE_WEIGHTS: Final = (
    ("drama", 20),
    ("comedy", 14),
    ("thriller", 9),
    ("action", 9),
    ("crime", 7),
    ("romance", 6),
    ("science_fiction", 6),
    ("documentary", 6),
    ("horror", 5),
    ("adventure", 5),
    ("fantasy", 4),
    ("mystery", 5),
    ("animation", 4),
    ("family", 4),
    ("kids", 3),
    ("history", 3),
    ("music", 2),
    ("reality", 2),
    ("sport", 2),
    ("war", 2),
    ("western", 1),
)

ADJECTIVES: Final = (
    "Silent",
    "Broken",
    "Golden",
    "Last",
    "Hidden",
    "Burning",
    "Frozen",
    "Distant",
    "Crimson",
    "Hollow",
    "Endless",
    "Wild",
    "Quiet",
    "Forgotten",
    "Electric",
    "Velvet",
    "Iron",
    "Paper",
    "Midnight",
    "Northern",
    "Lost",
    "Bright",
    "Restless",
    "Glass",
    "Savage",
    "Secret",
)

NOUNS: Final = (
    "Harbour",
    "Orbit",
    "River",
    "Kingdom",
    "Signal",
    "Garden",
    "Empire",
    "Shadow",
    "Horizon",
    "Mirror",
    "Storm",
    "Echo",
    "Frontier",
    "Lantern",
    "Compass",
    "Island",
    "Station",
    "Summer",
    "Winter",
    "Border",
    "Crown",
    "Witness",
    "Tide",
    "Circuit",
    "Canyon",
    "Archive",
    "Parade",
    "Voyage",
    "Heist",
    "Promise",
    "Orchard",
    "Lighthouse",
    "Engine",
    "Verdict",
    "Ballad",
)

TITLE_PATTERNS: Final = (
    "The {adj} {noun}",
    "{adj} {noun}",
    "The {noun}",
    "{noun} of the {noun2}",
    "A {noun} in {noun2}",
    "The {noun}s",
    "{adj} {noun}s",
    "Beyond the {noun}",
)

#: Original titles of non-English productions: (language, articles, words).
ORIGINAL_WORDS: Final = {
    "fr": (("Le", "La", "Les"), ("Silence", "Rivière", "Ombre", "Jardin", "Orage", "Phare")),
    "es": (("El", "La", "Los"), ("Silencio", "Río", "Sombra", "Jardín", "Tormenta", "Faro")),
    "de": (("Der", "Die", "Das"), ("Stille", "Fluss", "Schatten", "Garten", "Sturm", "Turm")),
    "it": (("Il", "La", "I"), ("Silenzio", "Fiume", "Ombra", "Giardino", "Tempesta", "Faro")),
    "pt": (("O", "A", "Os"), ("Silêncio", "Rio", "Sombra", "Jardim", "Tempestade", "Farol")),
    "pt-BR": (("O", "A", "Os"), ("Silêncio", "Rio", "Sombra", "Jardim", "Tempestade", "Farol")),
    "sv": (("Den", "Det", "De"), ("Tystnaden", "Floden", "Skuggan", "Stormen", "Fyren")),
}

SYNOPSIS_WHO: Final = (
    "A retired detective",
    "Two estranged sisters",
    "A young pilot",
    "An ambitious chef",
    "A small-town teacher",
    "A crew of six",
    "A grieving father",
    "An unlikely band",
    "A rookie journalist",
    "Three old friends",
    "A reluctant heir",
    "A stranded astronaut",
)

SYNOPSIS_WHAT: Final = (
    "must uncover a conspiracy",
    "try to save the family farm",
    "race against a storm",
    "fight to keep a failing station alive",
    "chase a forgotten treasure",
    "confront a past they buried",
    "rebuild a life from nothing",
    "solve a decades-old murder",
    "win one last championship",
    "survive a winter cut off from the world",
)

SYNOPSIS_WHEN: Final = (
    "before the city wakes up",
    "in a single night",
    "across three continents",
    "while the world watches",
    "before the harvest",
    "as the war draws closer",
    "without losing each other",
    "in the summer everything changed",
)

SYNOPSIS_EXTRA: Final = (
    "Newly remastered.",
    "Now with audio description.",
    "Includes a new director's cut.",
    "Extended edition.",
    "New subtitles added.",
    "Award-winning.",
)

CHARACTER_ROLES: Final = (
    "The Detective",
    "The Captain",
    "The Stranger",
    "Mother",
    "The Mayor",
    "Dr. Sen",
    "Commander Ode",
    "The Kid",
    "Narrator",
    "The Thief",
    "Agent Grey",
    "Professor Lind",
)

SEQUEL_SUFFIXES: Final = ("II", "III", "IV", "Returns", "Reckoning", "Legacy")

EPISODE_WORDS: Final = (
    "Pilot",
    "Burn",
    "Drift",
    "Return",
    "Ashes",
    "Fault Lines",
    "Undertow",
    "Homecoming",
    "The Long Night",
    "Blackout",
    "Crossing",
    "Reunion",
    "Exodus",
    "First Light",
    "Ghosts",
    "Checkmate",
    "Low Tide",
    "Fever",
    "Open Water",
    "Aftermath",
)

SEASON_WORDS: Final = ("Decay", "Rising", "Fallout", "Rebirth", "Exile", "Endgame", "Origins")

#: Reviews by star count; short, as typed on a phone.
REVIEWS: Final = {
    1: ("Could not finish it.", "Two hours I will never get back.", "Not for me at all."),
    2: ("Slow and predictable.", "Great cast, weak story.", "Started well, fell apart."),
    3: ("Decent, nothing special.", "Fine for a rainy evening.", "Some good moments."),
    4: ("Really enjoyed it.", "Slow start, stunning second half.", "Great performances."),
    5: ("A masterpiece.", "Watched it twice in a row.", "Best thing I have seen all year."),
}

#: (device kind, user agents)
DEVICE_AGENTS: Final = {
    "tv": ("PolystreamTV/4.2 (Linux; Android 12)", "PolystreamTV/4.3 (Tizen 7.0)"),
    "web": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/17.4",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
    "mobile": ("Polystream/7.1 (iPhone; iOS 17.4)", "Polystream/7.1 (Android 14; Pixel 8)"),
    "tablet": ("Polystream/7.1 (iPad; iPadOS 17.4)", "Polystream/7.0 (Android 13; Tab S9)"),
    "console": ("PolystreamConsole/2.0 (PlayStation 5)", "PolystreamConsole/2.0 (Xbox)"),
    "set_top_box": ("PolystreamSTB/1.9 (Linux; RDK)",),
}

DEVICE_KIND_WEIGHTS: Final = (
    ("tv", 35),
    ("mobile", 25),
    ("web", 20),
    ("tablet", 10),
    ("console", 6),
    ("set_top_box", 4),
)

CARD_BRAND_WEIGHTS: Final = (
    ("visa", 52),
    ("mastercard", 33),
    ("amex", 7),
    ("maestro", 3),
    ("discover", 2),
    ("jcb", 1),
    ("diners", 1),
    ("unionpay", 1),
)

PAYMENT_FAILURE_WEIGHTS: Final = (
    ("insufficient_funds", 40),
    ("card_declined", 25),
    ("expired_card", 15),
    ("authentication_required", 10),
    ("processing_error", 7),
    ("fraud_suspected", 3),
)

REFUND_REASON_WEIGHTS: Final = (
    ("requested_by_customer", 60),
    ("service_issue", 25),
    ("duplicate", 10),
    ("fraudulent", 5),
)
