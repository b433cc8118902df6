/* Readable names for the values of the generated protobuf enums, in one
 * place: SCHAKEL_EVENT(REFERRAL) instead of
 * SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL. Only names: the numbers
 * are the .proto files'. */
#ifndef SCHAKEL_ENUMS_H
#define SCHAKEL_ENUMS_H

#define SCHAKEL_EVENT(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x
#define SCHAKEL_KIND(x) SCHAKEL__V1__ORG_KIND__ORG_KIND_##x
#define SCHAKEL_OUTCOME(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x
#define SCHAKEL_BASIS(x) SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_##x
#define SCHAKEL_LOOP(x) SCHAKEL__V1__LOOP_STATE__LOOP_STATE_##x
#define SCHAKEL_LEVEL(x) SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_##x

#endif
