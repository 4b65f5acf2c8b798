-- similar_users and why_recommended on a tiny catalogue: two tastes (items 1-3 and 11-13).
CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 20, regularization = 0.05, seed = 7, threads = 1);
.print -- before the first refit: no neighbours, nothing to explain
SELECT count(*) FROM similar_users(1, 3);
SELECT count(*) FROM why_recommended(1, 3);
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
  (1, 1, 15, 15, 1700000000), (1, 2, 15, 15, 1700000001),
  (2, 1, 15, 15, 1700000002), (2, 2, 15, 15, 1700000003), (2, 3, 15, 15, 1700000004),
  (3, 11, 15, 15, 1700000005), (3, 12, 15, 15, 1700000006),
  (4, 11, 15, 15, 1700000007), (4, 12, 15, 15, 1700000008), (4, 13, 15, 15, 1700000009);
SELECT json_extract(foryou_refit('feed'), '$.version');
.print -- user 1's nearest user shares their taste; user 1 is left out
SELECT user_id, rank FROM similar_users(1, 1);
SELECT count(*) FROM similar_users(1, 10) WHERE user_id = 1;
.print -- user 1 watches item 11 now: folded in, their top item is explained by what they watched
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 11, 15, 15, 1700000010);
SELECT item_id, rank FROM recommend(1, 1);
SELECT item_id, rank FROM why_recommended(1, (SELECT item_id FROM recommend(1, 1)));
SELECT round(sum(contribution) - (SELECT score FROM recommend(1, 1)), 6) FROM why_recommended(1, (SELECT item_id FROM recommend(1, 1)), 1000);
.print -- empty: an unknown item, an unknown user
SELECT count(*) FROM why_recommended(1, 99);
SELECT count(*) FROM why_recommended(99, 1);
SELECT count(*) FROM similar_users(99, 3);
.print -- errors
SELECT * FROM similar_users(NULL, 3);
SELECT * FROM similar_users(1, 0);
SELECT * FROM why_recommended(1, NULL);
SELECT * FROM why_recommended(1, 2, 10001);
SELECT * FROM why_recommended(1);
