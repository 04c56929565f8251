"""Parsers for Last.fm (HetRec 2011) and the Yelp subset published with MCRec (Hu et al., KDD 2018)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.parsers.raw import RawDataset, RawFeatures, binary_content, multi_hot
from datasets.parsers.readers import read_table, require_file


LASTFM_TAGGINGS = "user_taggedartists.dat"


def parse_lastfm_hetrec2011(raw_dir: Path) -> RawDataset:
    """``user_artists.dat``: listening counts, kept as ``rating`` (Cantador et al., HetRec 2011).

    ``tags`` feature set (artist x tag, 0/1: some user gave the artist that tag) when the raw
    folder has ``user_taggedartists.dat``; the registry cannot fetch it (it is not in the
    mirror, and no trusted hash is known), so it is there only if a person put it there.
    """
    raw_dir = Path(raw_dir)
    dataset = "lastfm-hetrec2011"
    plays = read_table(
        require_file(raw_dir, "user_artists.dat", dataset), {"user": "int", "item": "int", "rating": "float"},
        header="userID\tartistID\tweight",
    )
    sources, items = ["user_artists.dat"], None
    if (raw_dir / "artists.dat").exists():
        items = read_table(
            raw_dir / "artists.dat", {"item": "int", "name": "str", "url": "str", "picture_url": "str"},
            header="id\tname\turl\tpictureURL",
        )[["item", "name", "url"]]
        sources.append("artists.dat")
    features = {}
    unused = "user_friends.dat and tags.dat are not used"
    if (raw_dir / LASTFM_TAGGINGS).exists():
        taggings = read_table(
            raw_dir / LASTFM_TAGGINGS,
            {"user": "int", "item": "int", "tag": "int", "day": "int", "month": "int", "year": "int"},
            header="userID\tartistID\ttagID\tday\tmonth\tyear",
        )
        artist_codes, artists = pd.factorize(taggings["item"], sort=True)
        tag_ids = np.sort(taggings["tag"].unique())
        tag_codes = np.searchsorted(tag_ids, taggings["tag"].to_numpy())
        features["tags"] = RawFeatures(
            binary_content(artist_codes, tag_codes, len(artists), len(tag_ids)), np.asarray(artists),
            {"source": LASTFM_TAGGINGS, "features": "artist x tag (0/1): some user tagged the artist with it",
             "feature_names": "tagID of tags.dat, in increasing order of the tag ids used"})
        sources.append(LASTFM_TAGGINGS)
        unused = "user_friends.dat is not used"
    return RawDataset(
        interactions=plays,
        source_files=sources,
        items=items,
        item_features=features,
        notes={
            "rating": "listening count (user_artists.dat weight), not a star rating",
            "unused_files": unused + ("" if features else f"; {LASTFM_TAGGINGS} is not in the raw folder: no tags"),
        },
    )


def parse_yelp_mcrec(raw_dir: Path) -> RawDataset:
    """Item content (the ``category-city`` feature set): one-hot business categories followed by one-hot city."""
    raw_dir = Path(raw_dir)
    dataset = "yelp-mcrec"
    ratings = read_table(require_file(raw_dir, "user_business.dat", dataset),
                         {"user": "int", "item": "int", "rating": "float"})
    relation = {"item": "int", "label": "int", "value": "int"}
    categories = read_table(require_file(raw_dir, "business_category.dat", dataset), relation)
    cities = read_table(require_file(raw_dir, "business_city.dat", dataset), relation)
    labels = pd.concat([
        categories["label"].map("category:{}".format), cities["label"].map("city:{}".format)
    ], ignore_index=True)
    owners = pd.concat([categories["item"], cities["item"]], ignore_index=True)
    content_items, content, names = multi_hot(owners, labels)
    # keep categories before cities, each in numeric order, whatever the string sort says
    order = np.lexsort((
        np.array([int(name.split(":")[1]) for name in names]),
        np.array([name.startswith("city:") for name in names]),
    ))
    content = sp.csr_matrix(content[:, order])
    names = [names[index] for index in order]
    return RawDataset(
        interactions=ratings,
        source_files=["user_business.dat", "business_category.dat", "business_city.dat"],
        item_features={"category-city": RawFeatures(content, content_items, {
            "source": "business_category.dat + business_city.dat",
            "features": "one-hot business categories, then one-hot city (0/1)", "feature_names": names})},
        notes={"unused_files": "user_user.dat and user_compliment.dat are not used"},
    )
