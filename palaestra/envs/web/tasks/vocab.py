"""Word banks the web task generators draw labels, names and values from."""

from __future__ import annotations

WORDS = (
    "apple", "amber", "anchor", "arrow", "basil", "beacon", "birch", "blossom", "bolt", "breeze",
    "canyon", "cedar", "cherry", "cobalt", "comet", "coral", "crystal", "dawn", "delta", "ember",
    "falcon", "fern", "flint", "forest", "frost", "garnet", "glacier", "harbor", "hazel", "helix",
    "indigo", "island", "ivory", "jade", "jasper", "juniper", "kelp", "lagoon", "lantern", "lemon",
    "lilac", "lotus", "maple", "marble", "meadow", "mint", "nectar", "nova", "oasis", "olive",
    "onyx", "orbit", "pebble", "pepper", "pine", "plume", "prism", "quartz", "quill", "raven",
    "reef", "ripple", "river", "saffron", "sage", "sierra", "slate", "spruce", "summit", "thistle",
    "thunder", "topaz", "tulip", "velvet", "violet", "walnut", "willow", "zephyr", "zinc", "yarrow",
)  # fmt: skip

VERBS = (
    "Submit", "Cancel", "Save", "Delete", "Open", "Close", "Next", "Back", "Apply", "Reset",
    "Send", "Share", "Print", "Export", "Import", "Refresh", "Confirm", "Archive", "Edit", "Copy",
    "Upload", "Download", "Search", "Start", "Stop", "Retry", "Accept", "Decline", "Publish", "Undo",
)  # fmt: skip

FIRST_NAMES = (
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kira", "Luis", "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Victor", "Wen", "Xavier", "Yara", "Zane", "Amir", "Beatriz", "Carlo", "Dana",
)  # fmt: skip

LAST_NAMES = (
    "Adler", "Barros", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quint", "Rossi", "Silva", "Tanaka",
)  # fmt: skip

COLORS = (
    "Red", "Orange", "Yellow", "Green", "Teal", "Blue", "Navy", "Purple", "Pink", "Brown",
    "Black", "White", "Gray", "Silver", "Gold", "Maroon", "Olive", "Cyan", "Beige", "Coral",
)  # fmt: skip

CITIES = (
    "Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Quito", "Tunis", "Riga", "Perth", "Osaka",
    "Porto", "Accra", "Dakar", "Bergen", "Cusco", "Dublin", "Kyoto", "Malmo", "Tallinn", "Zagreb",
)  # fmt: skip

COUNTRIES = (
    "Argentina", "Brazil", "Canada", "Denmark", "Egypt", "Finland", "Ghana", "Hungary", "India",
    "Japan", "Kenya", "Latvia", "Mexico", "Norway", "Peru", "Portugal", "Spain", "Sweden", "Vietnam",
)  # fmt: skip

FILLER = (
    "the", "a", "near", "with", "under", "over", "quiet", "bright", "old", "small",
    "every", "some", "across", "beside", "and", "or", "then", "soon", "often", "rarely",
)  # fmt: skip

HEADINGS = (
    "Notes", "Reading list", "Field guide", "Weekly digest", "Travel log", "Garden diary",
    "Project ideas", "Bookmarks", "Recipes", "News", "Archive", "Resources",
)  # fmt: skip

NOUNS = (
    "report", "invoice", "profile", "order", "ticket", "draft", "photo", "summary",
    "record", "message", "playlist", "receipt", "backup", "survey", "contract", "badge",
)  # fmt: skip

SETTINGS = (
    "Wi-Fi", "Bluetooth", "Notifications", "Dark mode", "Auto-update", "Location", "Sounds",
    "Vibration", "Sync", "Backups", "Analytics", "Newsletter", "Two-factor login", "Autoplay",
    "Captions", "Airplane mode", "Hotspot", "Do not disturb",
)  # fmt: skip

CHOICE_GROUPS = (
    ("Theme", ("Light", "Dark", "System")),
    ("Font size", ("Small", "Medium", "Large", "Huge")),
    ("Frequency", ("Daily", "Weekly", "Monthly")),
    ("Quality", ("Low", "Standard", "High", "Ultra")),
    ("Privacy", ("Public", "Friends", "Private")),
)  # fmt: skip

# -- application tasks (apps.py) -------------------------------------------------------------------
PRODUCT_NOUNS = (
    "Backpack", "Jacket", "Sneakers", "Lamp", "Mug", "Scarf", "Watch", "Bottle", "Tent", "Hoodie",
    "Kettle", "Blanket", "Cap", "Gloves", "Headphones", "Notebook", "Umbrella", "Boots", "Desk", "Pillow",
)  # fmt: skip

SHOP_CATEGORIES = ("Men", "Women", "Kids", "Outdoor", "Home", "Sport", "Travel", "Office")

DOC_KINDS = ("Report", "Budget", "Minutes", "Proposal", "Roadmap", "Invoice", "Handbook", "Review")

DEPARTMENTS = ("Sales", "Finance", "Legal", "Design", "Support", "Research", "Marketing", "Operations")

TAB_NAMES = (
    "Overview", "Profile", "Settings", "Billing", "Team", "Files", "Security", "Reports",
    "Messages", "Calendar", "Projects", "Activity",
)  # fmt: skip

EMAIL_SUBJECTS = (
    "Quarterly budget", "Team offsite", "Invoice overdue", "Lunch on Friday", "Project kickoff",
    "Server outage", "Holiday schedule", "Contract renewal", "New hire onboarding", "Design review",
    "Travel booking", "Weekly update", "Conference talk", "Office move", "Password reset",
)  # fmt: skip

REPLY_TEXTS = (
    "Thanks, I will take a look today.", "Sounds good to me.", "Can we move this to next week?",
    "I am out of office until Monday.", "Approved, please go ahead.", "Let me check and get back to you.",
    "Great news, thank you!", "Please send me the latest version.", "I can join at 3 pm.",
    "Count me in.",
)  # fmt: skip

STREET_KINDS = ("Street", "Road", "Avenue", "Lane", "Way", "Place")
