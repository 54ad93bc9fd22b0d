"""Made-up movie titles that sound like their genre, from word lists (for the sample data set)."""

from __future__ import annotations

# Title word lists by mood; a movie's main genre picks its mood. {A} adjective, {N} noun,
# {P} place, {C} city, {M} and {M2} first names; '_' joins the words of one entry.
# Action, Adventure, Sci-Fi, Fantasy, War and Western are "epic".
MOOD = {"Horror": "dark", "Thriller": "dark", "Crime": "dark", "Film-Noir": "dark",
        "Mystery": "dark", "Children": "family", "Animation": "family", "Musical": "family",
        "Comedy": "comedy", "Documentary": "doc", "Drama": "heart", "Romance": "heart"}
WORDS = {
    "dark": dict(
        A="Silent Crimson Hollow Black Cold Bleeding Wicked Grim Shattered Frozen Sleepless Buried "
          "Twisted Pale Broken Hidden Cursed Drowned Whispering Nameless Rotting Final Burning "
          "Blind Lost Dead",
        N="Night Harvest Cellar Witness Alibi Shadow Knife Asylum Widow Ritual Hunger Bones Hour "
          "Confession Stranger Motel Fever Debt Lullaby Mirror Scream Verdict Marsh Alley "
          "Ransom Heist Doll Cabin Dealer Hitchhiker Undertaker Signal",
        P="Dark Attic Fog Basement Woods Rain Well Dunes Static Snow Swamp Night",
        T=["The {A} {N}", "{A} {N}", "The {N} in the {P}", "Don't Open the {N}", "{N} Street",
           "The {N} of {M} {L}", "Kiss the {N}, {M}", "{A} {N} in {C}", "Night of the {A} {N}"]),
    "epic": dict(
        A="Iron Star Thunder Steel Dragon Titan Rogue Final Burning Solar Atomic Savage Eternal "
          "Phantom Lost Golden Quantum Outer Crimson Winter Silver Black Last Brave Hidden",
        N="Harbor Frontier Protocol Legion Strike Empire Horizon Citadel Vanguard Kingdom Odyssey "
          "Blade Reckoning Squadron Sentinel Colony Armada Gauntlet Outpost Fury Crown Comet "
          "Warlord Voyage Canyon Rider",
        P="Mars Europa Atlantis Neo_Tokyo Sector_9 the_Void Skull_Island Fort_Apache Red_Rock "
          "the_Abyss Zanzibar Dead_Man's_Gulch Titan Andromeda",
        T=["The {A} {N}", "{A} {N}", "{N} Rising", "Escape from {P}", "Return to {P}",
           "{M} and the {A} {N}", "{A} {N}: Zero Hour", "The {N} of {P}", "{A} {N} of {P}"]),
    "family": dict(
        A="Happy Little Big Magic Jolly Silly Wonderful Lucky Fuzzy Brave Tiny Flying Dancing "
          "Merry Clumsy Sunny Giggly Sparkly Cozy Marvelous",
        N="Pancake Puppy Party Balloon Treehouse Holiday Dinosaur Penguin Pirates Robot Christmas "
          "Snowman Circus Goose Kitten Unicorn Train Bakery Dragon Teddy_Bear Rainbow",
        P="Candy_Mountain the_Moon Toyland Bubble_Bay Broadway Lollipop_Lane",
        T=["The {A} {N}", "{A} {N}", "{M} and the {A} {N}", "{M}'s {A} {N}", "My {A} {N}",
           "Hooray for {P}!", "A {N} for {M}", "The {A} {N} of {P}"]),
    "comedy": dict(
        A="Crazy Wild Awkward Lucky Accidental Bad Perfect Hot Fake Total Secret Rented Loud "
          "Lazy Fabulous Dumb Naughty Sweet Lousy Weird",
        N="Roommates Neighbors In-Laws Interns Bachelors Vacation Weekend Boss Reunion Fiancé "
          "Road_Trip Best_Man Babysitter Cousins Dentist Landlord Substitute Wedding Divorce "
          "Mix-Up Cruise",
        P="Vegas Florida Cancún Camp_Wannameka the_Suburbs Jersey Ibiza",
        T=["{A} {N}", "The {A} {N}", "{M} Gets Married", "Meet the {N}", "Weekend in {P}",
           "{M}, Party of Five", "Who Invited {M}?", "{A} {N} in {P}", "{M} vs. the {N}"]),
    "doc": dict(
        A="Last Hidden Long Secret Unseen Broken Quiet Great Burning Forgotten",
        N="Glacier Factory Election Reef Orchestra Kitchen Marathon Archive Refinery Frontier "
          "Choir Vote Orbit Mine Harvest Border",
        P="the_Amazon the_Arctic Chernobyl Detroit Mumbai Lagos",
        T=["Inside the {N}", "The {A} {N}", "Voices of {C}", "Chasing the {N}",
           "Letters from {P}", "The {N}: A True Story", "The {A} {N} of {P}"]),
    "heart": dict(
        A="Quiet Distant Tender Last Long Bitter Golden Small Lonely Second Late Open Gentle "
          "Borrowed Little Secret Broken Blue Summer Strange",
        N="Orchard Letter Season River Garden Promise Winter Bridge Window Daughter Silence Waltz "
          "Affair Lesson Piano Harvest Wedding Lighthouse Portrait Station Inheritance Son",
        P="the_Sea the_Station the_Vineyard the_Coast",
        T=["Midnight in {C}", "Letters from {C}", "Summer in {C}", "The {N} of {M}",
           "{M}'s {N}", "Goodbye, {C}", "A {A} {N}", "The {A} {N}", "{M} and {M2}",
           "A {N} in {C}", "The {A} {N} of {M} {L}"]),
}
CITIES = ("Lisbon Paris Vienna Kraków Zürich Montréal São_Paulo Bogotá Reykjavík Tokyo "
          "Dublin Naples Marseille Prague Istanbul Havana Brooklyn Oslo")
NAMES = "Anna José Chloé Renée Marcus Elena Tom Clara Sam Ingrid Luis Mabel Frank Zoë Otto Ruth"
SURNAMES = "Kane Novak Moreau Brennan Okafor Lindqvist Costa Hale Duval Whitaker"


def pick(rng, words: str) -> str:
    """One entry of a space-separated word list."""
    return str(rng.choice(words.split())).replace("_", " ")


def make_title(rng, genre: str) -> str:
    """A title that sounds like `genre`, without the year."""
    w = WORDS[MOOD.get(genre, "epic")]
    fill = dict(A=pick(rng, w["A"]), N=pick(rng, w["N"]), P=pick(rng, w["P"]),
                C=pick(rng, CITIES), M=pick(rng, NAMES), M2=pick(rng, NAMES), L=pick(rng, SURNAMES))
    title = str(rng.choice(w["T"])).format(**fill)
    return f'The "{fill["A"]}" {fill["N"]}' if rng.random() < 0.003 else title  # a few with quotes
