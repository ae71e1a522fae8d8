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
