-- foryou quick start, in the sqlite3 shell (the README walks through it):
--   make loadable
--   sqlite3 -cmd '.load ./target/release/libforyou' :memory: < sql/demo.sql
.mode table

-- A model and its watch events. Quick swipes (< half the video) count as dislikes.
CREATE VIRTUAL TABLE feed USING foryou(confidence = linear, alpha = 10, skip_ratio = 0.5);

-- A catalogue: 90 videos in 3 genres, 10 to 59 seconds long.
CREATE TABLE videos(item_id INTEGER PRIMARY KEY, genre TEXT, duration REAL);
INSERT INTO videos
  SELECT value, CASE value % 3 WHEN 0 THEN 'comedy' WHEN 1 THEN 'cooking' ELSE 'pets' END, 10 + value * 37 % 50
  FROM generate_series(1, 90);

-- 60 users; user u loves genre u % 3. Each is shown 30 videos: a favourite is watched
-- and replayed (1.5 times its length), anything else swiped away after a tenth.
INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
  SELECT u.value, v.item_id,
         CASE WHEN v.item_id % 3 = u.value % 3 THEN 1.5 * v.duration ELSE 0.1 * v.duration END,
         v.duration, 1700000000 + 100 * u.value + n.value
  FROM generate_series(1, 60) AS u, generate_series(1, 30) AS n
  JOIN videos AS v ON v.item_id = 1 + (u.value * 17 + n.value * 7) % 90;

SELECT count(*) AS events, count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS videos FROM feed;

-- Learn from every event (milliseconds here); the JSON report says what was done.
.mode list
SELECT foryou_refit('feed');
.mode table

-- User 1 loves cooking (1 % 3 = 1): their top 5 unwatched videos.
SELECT rank, item_id, genre, round(score, 3) AS score
FROM recommend(1, 5) JOIN videos USING (item_id)
ORDER BY rank;

-- A newcomer with no events gets the videos most users have played...
SELECT rank, item_id, genre, score FROM recommend(1000, 3) JOIN videos USING (item_id) ORDER BY rank;

-- ...until they watch two pets videos: their feed adapts at once, without a refit.
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1000, 2, 45, 30, 1700007000), (1000, 5, 20, 20, 1700007060);
SELECT rank, item_id, genre, round(score, 3) AS score FROM recommend(1000, 3) JOIN videos USING (item_id) ORDER BY rank;

-- Videos like video 2, by their learnt embeddings.
SELECT rank, item_id, genre, round(score, 3) AS score FROM similar_items(2, 3) JOIN videos USING (item_id) ORDER BY rank;
