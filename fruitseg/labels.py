"""The 131 Fruits-360 class names (release 2020.05.18.0), in sorted order, and their kinds.

Index ``i`` is class id ``i`` of the classifier's 131 outputs. The same list is stored in
the classifier checkpoint's ``config.json``; this copy is the default and the reference.

Fruits-360's classes are varieties, some even single specimens ("Apple Red 1/2/3"). On an
ordinary photo the honest answer is the *kind* ("Apple"), the variety a detail. A class's
kind is its first word, except where :data:`KIND_EXCEPTIONS` says otherwise (plural or
local names, two-word kinds).
"""

from __future__ import annotations

from typing import Sequence

FRUITS360_CLASSES: tuple[str, ...] = (
    "Apple Braeburn",
    "Apple Crimson Snow",
    "Apple Golden 1",
    "Apple Golden 2",
    "Apple Golden 3",
    "Apple Granny Smith",
    "Apple Pink Lady",
    "Apple Red 1",
    "Apple Red 2",
    "Apple Red 3",
    "Apple Red Delicious",
    "Apple Red Yellow 1",
    "Apple Red Yellow 2",
    "Apricot",
    "Avocado",
    "Avocado ripe",
    "Banana",
    "Banana Lady Finger",
    "Banana Red",
    "Beetroot",
    "Blueberry",
    "Cactus fruit",
    "Cantaloupe 1",
    "Cantaloupe 2",
    "Carambula",
    "Cauliflower",
    "Cherry 1",
    "Cherry 2",
    "Cherry Rainier",
    "Cherry Wax Black",
    "Cherry Wax Red",
    "Cherry Wax Yellow",
    "Chestnut",
    "Clementine",
    "Cocos",
    "Corn",
    "Corn Husk",
    "Cucumber Ripe",
    "Cucumber Ripe 2",
    "Dates",
    "Eggplant",
    "Fig",
    "Ginger Root",
    "Granadilla",
    "Grape Blue",
    "Grape Pink",
    "Grape White",
    "Grape White 2",
    "Grape White 3",
    "Grape White 4",
    "Grapefruit Pink",
    "Grapefruit White",
    "Guava",
    "Hazelnut",
    "Huckleberry",
    "Kaki",
    "Kiwi",
    "Kohlrabi",
    "Kumquats",
    "Lemon",
    "Lemon Meyer",
    "Limes",
    "Lychee",
    "Mandarine",
    "Mango",
    "Mango Red",
    "Mangostan",
    "Maracuja",
    "Melon Piel de Sapo",
    "Mulberry",
    "Nectarine",
    "Nectarine Flat",
    "Nut Forest",
    "Nut Pecan",
    "Onion Red",
    "Onion Red Peeled",
    "Onion White",
    "Orange",
    "Papaya",
    "Passion Fruit",
    "Peach",
    "Peach 2",
    "Peach Flat",
    "Pear",
    "Pear 2",
    "Pear Abate",
    "Pear Forelle",
    "Pear Kaiser",
    "Pear Monster",
    "Pear Red",
    "Pear Stone",
    "Pear Williams",
    "Pepino",
    "Pepper Green",
    "Pepper Orange",
    "Pepper Red",
    "Pepper Yellow",
    "Physalis",
    "Physalis with Husk",
    "Pineapple",
    "Pineapple Mini",
    "Pitahaya Red",
    "Plum",
    "Plum 2",
    "Plum 3",
    "Pomegranate",
    "Pomelo Sweetie",
    "Potato Red",
    "Potato Red Washed",
    "Potato Sweet",
    "Potato White",
    "Quince",
    "Rambutan",
    "Raspberry",
    "Redcurrant",
    "Salak",
    "Strawberry",
    "Strawberry Wedge",
    "Tamarillo",
    "Tangelo",
    "Tomato 1",
    "Tomato 2",
    "Tomato 3",
    "Tomato 4",
    "Tomato Cherry Red",
    "Tomato Heart",
    "Tomato Maroon",
    "Tomato Yellow",
    "Tomato not Ripened",
    "Walnut",
    "Watermelon",
)

NUM_CLASSES = len(FRUITS360_CLASSES)

# Classes whose kind is not simply their first word.
KIND_EXCEPTIONS: dict[str, str] = {
    "Cactus fruit": "Cactus Fruit",
    "Dates": "Date",
    "Kumquats": "Kumquat",
    "Limes": "Lime",
    "Maracuja": "Passion Fruit",  # maracujá is Portuguese for passion fruit
    "Passion Fruit": "Passion Fruit",
    "Nut Forest": "Forest Nut",
    "Nut Pecan": "Pecan",
}


def kind_of(class_name: str) -> str:
    """The kind of a Fruits-360 class: ``"Apple Red 2"`` -> ``"Apple"``, ``"Maracuja"`` -> ``"Passion Fruit"``."""
    return KIND_EXCEPTIONS.get(class_name, class_name.split()[0])


def kinds_of(class_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """(the distinct kinds in order of first appearance, each class's index into them)."""
    kinds: list[str] = []
    index: list[int] = []
    for name in class_names:
        kind = kind_of(name)
        if kind not in kinds:
            kinds.append(kind)
        index.append(kinds.index(kind))
    return kinds, index


FRUITS360_KINDS, KIND_INDEX = kinds_of(FRUITS360_CLASSES)


def kind_for_folder(name: str, class_names: Sequence[str] = FRUITS360_CLASSES) -> str | None:
    """The kind a ``<kind>/`` folder of photos names, or None: matched case-insensitively against
    each kind and each class's first word (``"limes"``, ``"passion"``, ``"apple"`` all work)."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    for class_name in class_names:
        if key in (kind_of(class_name).lower(), class_name.split()[0].lower()):
            return kind_of(class_name)
    return None
