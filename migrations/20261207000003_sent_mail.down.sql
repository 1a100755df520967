drop table if exists sent_mail;
