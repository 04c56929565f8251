"""Parsers for Last.fm (HetRec 2011) and the Yelp subset published with MCRec (Hu et al., KDD 2018)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.parsers.raw import RawDataset, multi_hot
from datasets.parsers.readers import read_table, require_file


def parse_lastfm_hetrec2011(raw_dir: Path) -> RawDataset:
    """``user_artists.dat``: listening counts, kept as ``rating`` (Cantador et al., HetRec 2011)."""
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
    return RawDataset(
        interactions=plays,
        source_files=sources,
        items=items,
        notes={
            "rating": "listening count (user_artists.dat weight), not a star rating",
            "unused_files": "user_friends.dat and tags.dat are not used; user_taggedartists.dat is not in the mirror",
        },
    )


def parse_yelp_mcrec(raw_dir: Path) -> RawDataset:
    """Item content: one-hot business categories followed by one-hot city."""
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
        item_content=content,
        content_items=content_items,
        content_info={"source": "business_category.dat + business_city.dat",
                      "kind": "one-hot categories then city (0/1)", "n_features": len(names),
                      "feature_names": names},
        notes={"unused_files": "user_user.dat and user_compliment.dat are not used"},
    )
