-- Satisfaction surveys (CSAT): one per ticket of a type that has a survey, made when it is
-- first resolved; answered once through its token (the customer's link); `rating` is the
-- first rating question's answer, what reports average.

CREATE TABLE ticket_surveys (
    tenant_id   TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    token       TEXT NOT NULL,
    type_key    TEXT NOT NULL,
    -- JSON: the survey as it was sent (later changes of the type do not change it)
    survey      TEXT NOT NULL,
    sent_at     BIGINT NOT NULL,
    answered_at BIGINT,
    -- JSON object: question key → answer
    answers     TEXT,
    rating      BIGINT,
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE UNIQUE INDEX ticket_surveys_by_token ON ticket_surveys (token);
CREATE INDEX ticket_surveys_by_time ON ticket_surveys (tenant_id, sent_at);
