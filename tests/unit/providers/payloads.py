"""Provider responses shaped like each platform's documentation (fresh dicts, so tests may mutate them).

Values are invented; field names, nesting and types follow the documented responses, including fields
our clients ignore (they must be tolerated).
"""

# ruff: noqa: S107  (fake tokens as builder defaults; pyproject only exempts S105/S106 under tests/)

from __future__ import annotations

from typing import Any

# ---------------------------------------------------------------------------------------- Spotify

SPOTIFY_ARTIST_ID = "0TnOYISbd1XYRBk9myaseg"


def spotify_token(refresh_token: str | None = "AQDspotify-refresh-1") -> dict[str, Any]:
    """POST accounts.spotify.com/api/token."""
    body: dict[str, Any] = {
        "access_token": "BQDspotify-access-1",
        "token_type": "Bearer",
        "scope": "user-read-private",
        "expires_in": 3600,
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body


def spotify_me() -> dict[str, Any]:
    """GET /v1/me."""
    return {
        "country": "SE",
        "display_name": "Label Manager",
        "explicit_content": {"filter_enabled": False, "filter_locked": False},
        "external_urls": {"spotify": "https://open.spotify.com/user/labelmgr"},
        "followers": {"href": None, "total": 4},
        "href": "https://api.spotify.com/v1/users/labelmgr",
        "id": "labelmgr",
        "images": [],
        "product": "premium",
        "type": "user",
        "uri": "spotify:user:labelmgr",
    }


def spotify_artist(*, dev_mode: bool = False) -> dict[str, Any]:
    """GET /v1/artists/{id}. In Development Mode (since March 2026) followers and popularity are absent."""
    body: dict[str, Any] = {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{SPOTIFY_ARTIST_ID}"},
        "followers": {"href": None, "total": 10245},
        "genres": ["indie pop"],
        "href": f"https://api.spotify.com/v1/artists/{SPOTIFY_ARTIST_ID}",
        "id": SPOTIFY_ARTIST_ID,
        "images": [{"url": "https://i.scdn.co/image/ab6761610000e5eb", "height": 640, "width": 640}],
        "name": "The Example Band",
        "popularity": 57,
        "type": "artist",
        "uri": f"spotify:artist:{SPOTIFY_ARTIST_ID}",
    }
    if dev_mode:
        del body["followers"], body["popularity"]
    return body


def spotify_album(n: int) -> dict[str, Any]:
    """A simplified album object as found in a paging object's items."""
    return {
        "album_type": "single",
        "total_tracks": 1,
        "external_urls": {"spotify": f"https://open.spotify.com/album/alb{n}"},
        "href": f"https://api.spotify.com/v1/albums/alb{n}",
        "id": f"alb{n}",
        "images": [],
        "name": f"Single {n}",
        "release_date": "2025-01-01",
        "release_date_precision": "day",
        "type": "album",
        "uri": f"spotify:album:alb{n}",
        "artists": [{"id": SPOTIFY_ARTIST_ID, "name": "The Example Band", "type": "artist"}],
        "album_group": "single",
    }


def spotify_albums_page(*, offset: int, count: int, total: int | None, next_url: str | None) -> dict[str, Any]:
    """GET /v1/artists/{id}/albums: a paging object."""
    base = f"https://api.spotify.com/v1/artists/{SPOTIFY_ARTIST_ID}/albums"
    body: dict[str, Any] = {
        "href": f"{base}?offset={offset}&limit=10&include_groups=album,single",
        "limit": 10,
        "next": next_url,
        "offset": offset,
        "previous": None,
        "items": [spotify_album(offset + i) for i in range(count)],
    }
    if total is not None:
        body["total"] = total
    return body


def spotify_artist_with_id(artist_id: str, followers: int = 10245) -> dict[str, Any]:
    """A full artist object for `artist_id`."""
    body = spotify_artist()
    body.update(id=artist_id, uri=f"spotify:artist:{artist_id}", href=f"https://api.spotify.com/v1/artists/{artist_id}",
                name=f"Artist {artist_id[-4:]}")
    body["external_urls"] = {"spotify": f"https://open.spotify.com/artist/{artist_id}"}
    body["followers"]["total"] = followers
    return body


def spotify_several_artists(ids: list[str], *, gone: tuple[str, ...] = ()) -> dict[str, Any]:
    """GET /v1/artists?ids=a,b,c: `artists` in the order asked, `null` in the place of an id with no artist."""
    return {"artists": [None if i in gone else spotify_artist_with_id(i, 1000 + n) for n, i in enumerate(ids)]}


def spotify_error(status: int, message: str) -> dict[str, Any]:
    """The Web API error object."""
    return {"error": {"status": status, "message": message}}


# ---------------------------------------------------------------------------------------- YouTube / Google

YT_CHANNEL_ID = "UCt7fwAhXDy3oNFTAzF2o8Pw"


def google_token(refresh_token: str | None = "1//0google-refresh") -> dict[str, Any]:
    """POST oauth2.googleapis.com/token."""
    body: dict[str, Any] = {
        "access_token": "ya29.google-access",
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/youtube.readonly https://www.googleapis.com/auth/yt-analytics.readonly",
        "token_type": "Bearer",
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body


def yt_channels(*, hidden: bool = False, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """channels.list?part=snippet,statistics&mine=true: statistics counts are strings."""
    statistics: dict[str, Any] = {
        "viewCount": "1843021",
        "subscriberCount": "12300",
        "hiddenSubscriberCount": hidden,
        "videoCount": "87",
    }
    if hidden:
        del statistics["subscriberCount"]
    for field in drop:
        statistics.pop(field, None)
    return {
        "kind": "youtube#channelListResponse",
        "etag": "etag-list",
        "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
        "items": [
            {
                "kind": "youtube#channel",
                "etag": "etag-channel",
                "id": YT_CHANNEL_ID,
                "snippet": {
                    "title": "The Example Band",
                    "description": "Official channel",
                    "customUrl": "@theexampleband",
                    "publishedAt": "2014-03-01T10:00:00Z",
                    "thumbnails": {"default": {"url": "https://yt3.ggpht.com/x", "width": 88, "height": 88}},
                    "localized": {"title": "The Example Band", "description": "Official channel"},
                    "country": "GB",
                },
                "statistics": statistics,
            }
        ],
    }


YT_COLUMNS = ("day", "views", "estimatedMinutesWatched", "subscribersGained", "subscribersLost")


def yt_channel(channel_id: str, subscribers: int = 12300) -> dict[str, Any]:
    """A channel resource with part=snippet,statistics (as in channels.list's items)."""
    return {
        "kind": "youtube#channel",
        "etag": f"etag-{channel_id}",
        "id": channel_id,
        "snippet": {"title": f"Channel {channel_id[-4:]}", "description": "", "publishedAt": "2015-01-01T00:00:00Z",
                    "thumbnails": {}, "localized": {"title": f"Channel {channel_id[-4:]}", "description": ""}},
        "statistics": {"viewCount": str(subscribers * 150), "subscriberCount": str(subscribers),
                       "hiddenSubscriberCount": False, "videoCount": "42"},
    }


def yt_channels_by_id(ids: list[str], *, gone: tuple[str, ...] = ()) -> dict[str, Any]:
    """channels.list?part=snippet,statistics&id=a,b,c: one item per channel found, in no promised order; an id
    YouTube has no channel for (deleted, terminated) is simply absent, and totalResults counts what was found."""
    items = [yt_channel(i, 1000 + n) for n, i in enumerate(ids) if i not in gone]
    return {
        "kind": "youtube#channelListResponse",
        "etag": "etag-list",
        "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
        "items": items,
    }


def yt_quota_exceeded() -> dict[str, Any]:
    """The Data API's 403 once the project's daily quota is spent (domain youtube.quota, reason quotaExceeded)."""
    message = ('The request cannot be completed because you have exceeded your '
               '<a href="/youtube/v3/getting-started#quota">quota</a>.')
    return google_error(403, message, "quotaExceeded", domain="youtube.quota")


def yt_report(rows: list[list[Any]] | None, columns: tuple[str, ...] = YT_COLUMNS) -> dict[str, Any]:
    """reports.query with dimensions=day: columnHeaders + rows (rows omitted when there is no data)."""
    headers = [
        {
            "name": c,
            "columnType": "DIMENSION" if c == "day" else "METRIC",
            "dataType": "STRING" if c == "day" else "INTEGER",
        }
        for c in columns
    ]
    body: dict[str, Any] = {"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers}
    if rows is not None:
        body["rows"] = rows
    return body


def google_error(code: int, message: str, reason: str, *, status: str | None = None, domain: str = "global") -> dict:
    """The Google API error shape."""
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    if status:
        body["error"]["status"] = status
    return body


# ---------------------------------------------------------------------------------------- Instagram

IG_USER_ID = "17841405822304914"


def ig_short_token() -> dict[str, Any]:
    """POST api.instagram.com/oauth/access_token (Business Login): a short-lived token in `data`."""
    return {
        "data": [
            {
                "access_token": "IGAAshort-lived",
                "user_id": IG_USER_ID,
                "permissions": "instagram_business_basic,instagram_business_manage_insights",
            }
        ]
    }


def ig_long_token(token: str = "IGAAlong-lived-1") -> dict[str, Any]:
    """GET graph.instagram.com/access_token and /refresh_access_token."""
    return {"access_token": token, "token_type": "bearer", "expires_in": 5183944}


def ig_me() -> dict[str, Any]:
    """GET /me?fields=user_id,username,account_type (the app-scoped `id` always comes along)."""
    return {"user_id": IG_USER_ID, "username": "theexampleband", "account_type": "BUSINESS", "id": "7234567890123456"}


def ig_profile(drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """GET /{id}?fields=followers_count,media_count."""
    body = {"followers_count": 15230, "media_count": 312, "id": IG_USER_ID}
    for field in drop:
        body.pop(field, None)
    return body


def ig_time_series(name: str, values: list[tuple[Any, str]]) -> dict[str, Any]:
    """One time-series metric entry: values with end_time."""
    return {
        "name": name,
        "period": "day",
        "values": [{"value": v, "end_time": t} for v, t in values],
        "title": name.replace("_", " ").capitalize(),
        "description": f"Description of {name}.",
        "id": f"{IG_USER_ID}/insights/{name}/day",
    }


def ig_total_value(name: str, value: Any) -> dict[str, Any]:
    """One total-value metric entry."""
    return {
        "name": name,
        "period": "day",
        "title": name.replace("_", " ").capitalize(),
        "description": f"Description of {name}.",
        "total_value": {"value": value},
        "id": f"{IG_USER_ID}/insights/{name}/day",
    }


def ig_insights(*entries: dict[str, Any]) -> dict[str, Any]:
    """GET /{id}/insights."""
    return {
        "data": list(entries),
        "paging": {
            "previous": f"https://graph.instagram.com/{IG_USER_ID}/insights?since=1&until=2",
            "next": f"https://graph.instagram.com/{IG_USER_ID}/insights?since=3&until=4",
        },
    }


def graph_error(code: int, message: str, *, subcode: int | None = None, transient: bool = False) -> dict[str, Any]:
    """The Graph API error shape."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return {"error": error}


# ---------------------------------------------------------------------------------------- SoundCloud

SC_USER_ID = "123456789"


def sc_token(access: str = "2-290000-123456789-access1", refresh: str | None = "sc-refresh-1") -> dict[str, Any]:
    """POST secure.soundcloud.com/oauth/token."""
    body: dict[str, Any] = {"access_token": access, "expires_in": 3599, "scope": "", "token_type": "bearer"}
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def sc_me(drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """GET /me."""
    body: dict[str, Any] = {
        "avatar_url": "https://i1.sndcdn.com/avatars-000-large.jpg",
        "city": "Berlin",
        "country": "Germany",
        "description": None,
        "discogs_name": None,
        "first_name": "Example",
        "followers_count": 5432,
        "followings_count": 120,
        "full_name": "The Example Band",
        "id": int(SC_USER_ID),
        "kind": "user",
        "last_modified": "2026/04/01 10:00:00 +0000",
        "last_name": "Band",
        "permalink": "theexampleband",
        "permalink_url": "https://soundcloud.com/theexampleband",
        "plan": "Pro Unlimited",
        "playlist_count": 2,
        "public_favorites_count": 12,
        "reposts_count": 3,
        "track_count": 3,
        "uri": f"https://api.soundcloud.com/users/{SC_USER_ID}",
        "urn": f"soundcloud:users:{SC_USER_ID}",
        "username": "theexampleband",
        "website": None,
    }
    for field in drop:
        body.pop(field, None)
    return body


def sc_track(track_id: int, playback_count: int | None, *, drop_count: bool = False) -> dict[str, Any]:
    """A track in /users/{id}/tracks."""
    body: dict[str, Any] = {
        "kind": "track",
        "id": track_id,
        "urn": f"soundcloud:tracks:{track_id}",
        "title": f"Track {track_id}",
        "created_at": "2025/06/01 12:00:00 +0000",
        "duration": 201000,
        "access": "playable",
        "permalink_url": f"https://soundcloud.com/theexampleband/track-{track_id}",
        "playback_count": playback_count,
        "favoritings_count": 40,
        "comment_count": 2,
        "reposts_count": 1,
        "user": {"id": int(SC_USER_ID), "kind": "user", "username": "theexampleband"},
    }
    if drop_count:
        del body["playback_count"]
    return body


def sc_error(code: int, error_code: str, status: str) -> dict[str, Any]:
    """SoundCloud's error body."""
    return {
        "code": code,
        "message": "",
        "link": "https://developers.soundcloud.com/docs/api/explorer/open-api",
        "status": status,
        "errors": [{"error_message": error_code}],
        "error": None,
        "error_code": error_code,
    }


def sc_rate_limited(reset_time: str) -> dict[str, Any]:
    """SoundCloud's 429 body."""
    return {
        "errors": [
            {
                "meta": {
                    "rate_limit": {"group": "plays", "max_nr_of_requests": 15000, "time_window": "PT24H"},
                    "remaining_requests": 0,
                    "reset_time": reset_time,
                }
            }
        ]
    }


# ---------------------------------------------------------------------------------------- TikTok

TT_OPEN_ID = "-000OdCO7fMWdq6Xo1ntYgd3U9rQ8mx1Q8Xa"
TT_LOG_ID = "20261130101522A1B2C3D4E5F60718293A"


def tt_token(access: str = "act.tiktok-access-1", refresh: str | None = "rft.tiktok-refresh-1") -> dict[str, Any]:
    """POST open.tiktokapis.com/v2/oauth/token/ (authorization_code and refresh_token grants): flat, `scope`
    comma-separated, lifetimes in seconds (2 hours and 180 days per the November 2026 pages)."""
    body: dict[str, Any] = {
        "access_token": access,
        "expires_in": 7200,
        "open_id": TT_OPEN_ID,
        "refresh_expires_in": 15552000,
        "scope": "user.info.basic,user.info.stats,video.list",
        "token_type": "Bearer",
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def tt_oauth_error(error: str, description: str) -> dict[str, Any]:
    """The OAuth error struct of the token endpoint: `error`, `error_description`, `log_id`."""
    return {"error": error, "error_description": description, "log_id": TT_LOG_ID}


def tt_ok() -> dict[str, Any]:
    """The `error` object of a successful Display API answer."""
    return {"code": "ok", "message": "", "log_id": TT_LOG_ID}


def tt_user(drop: tuple[str, ...] = (), **values: Any) -> dict[str, Any]:
    """GET /v2/user/info/?fields=...: `data.user` holds the fields asked for (scopes user.info.basic and .stats)."""
    user: dict[str, Any] = {
        "open_id": TT_OPEN_ID,
        "union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1",
        "display_name": "lunavale",
        "follower_count": 48210,
        "following_count": 312,
        "likes_count": 1204533,
        "video_count": 87,
        **values,
    }
    for field in drop:
        user.pop(field, None)
    return {"data": {"user": user}, "error": tt_ok()}


def tt_video(video_id: str, views: int | None, *, create_time: int = 1777000000, drop: tuple[str, ...] = ()
             ) -> dict[str, Any]:
    """A video object of /v2/video/list/ with the fields we ask for (counts are lifetime totals)."""
    body: dict[str, Any] = {
        "id": video_id,
        "create_time": create_time,
        "title": f"Moonrise teaser {video_id[-3:]}",
        "view_count": views,
        "like_count": (views or 0) // 10,
        "comment_count": (views or 0) // 200,
        "share_count": (views or 0) // 150,
    }
    for field in drop:
        body.pop(field, None)
    return body


def tt_videos(videos: list[dict[str, Any]], *, cursor: int = 1777000000000, has_more: bool = False
              ) -> dict[str, Any]:
    """POST /v2/video/list/?fields=...: `data.videos`, `data.cursor` (UTC epoch ms), `data.has_more`."""
    return {"data": {"videos": videos, "cursor": cursor, "has_more": has_more}, "error": tt_ok()}


def tt_error(code: str, message: str) -> dict[str, Any]:
    """A Display API error: the error struct (`code` a string, `message`, `log_id`) beside an empty `data`."""
    return {"data": {}, "error": {"code": code, "message": message, "log_id": TT_LOG_ID}}
